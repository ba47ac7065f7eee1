//! The baseline: OpenSSH's own `sshd` on a private loopback port, started
//! from a temporary config, so every sshpipe figure has an OpenSSH figure
//! beside it from the same run on the same (noisy, shared) machine.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::procfs::{self, Usage};

/// Why there is no baseline, said the same way everywhere.
pub const MISSING: &str =
    "OpenSSH sshd not found: install it with `apt-get install openssh-server` for the baseline";

pub struct Sshd {
    pub addr: SocketAddr,
    pub user: String,
    child: Child,
    _dir: tempfile::TempDir,
}

/// Where `sshd` is, if it is installed.
pub fn locate() -> Option<PathBuf> {
    ["/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Sshd {
    /// Starts `sshd -D` accepting only `authorized_key`, for the user this
    /// process runs as.
    pub fn start(sshd: &Path, authorized_key: &str) -> Result<Self> {
        let dir = tempfile::tempdir().context("cannot make a dir for sshd")?;
        let host_key = dir.path().join("host_ed25519");
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key)
            .stdin(Stdio::null())
            .status()
            .context("cannot run ssh-keygen")?;
        if !st.success() {
            bail!("ssh-keygen failed to make sshd's host key");
        }
        let authorized = dir.path().join("authorized_keys");
        std::fs::write(&authorized, format!("{authorized_key}\n"))?;
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress {addr}\n\
                 HostKey {}\n\
                 AuthorizedKeysFile {}\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PermitRootLogin prohibit-password\n\
                 PidFile none\n\
                 UseDNS no\n\
                 MaxStartups 200:30:400\n\
                 MaxSessions 100\n\
                 LogLevel FATAL\n",
                host_key.display(),
                authorized.display()
            ),
        )?;
        // Privilege separation needs this directory when sshd runs as root.
        let _ = std::fs::create_dir_all("/run/sshd");
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", sshd.display()))?;
        let user = current_user()?;
        let mut me = Self {
            addr,
            user,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(st)) = me.child.try_wait() {
                bail!("sshd exited at start ({st})");
            }
            if Instant::now() > deadline {
                bail!("sshd did not listen on {addr} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(me)
    }

    /// The listener's usage; its CPU includes every per-connection child
    /// it has reaped, so it covers finished sessions too.
    pub fn usage(&self) -> Option<Usage> {
        procfs::usage(self.child.id())
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

fn current_user() -> Result<String> {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .context("cannot run id -un")?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if name.is_empty() {
        bail!("cannot tell which user we run as");
    }
    Ok(name)
}

impl Sshd {
    /// PSS of the listener and every per-connection process under it.
    pub fn tree_pss(&self) -> Option<u64> {
        procfs::tree_pss(self.child.id())
    }
}
