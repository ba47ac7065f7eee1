//! The baseline: OpenSSH's own `sshd` on a private loopback port, started
//! from a temporary config, so every sshpipe figure has an OpenSSH figure
//! beside it from the same run on the same (noisy, shared) machine.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::fs::PermissionsExt as _;

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
    /// Starts `sshd -D` accepting only `authorized_key`, for the session
    /// user (see `session_user`).
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
        let user = session_user()?;
        // sshd reads authorized_keys as the session user.
        let authorized = dir.path().join("authorized_keys");
        std::fs::write(&authorized, format!("{authorized_key}\n"))?;
        std::fs::set_permissions(&authorized, std::fs::Permissions::from_mode(0o644))?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
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

    /// The listener's usage. `cpu_with_children` includes the processes it
    /// reaped, but not the unprivileged session children, which their
    /// monitor never waits for: a lower bound (see `sample_cpu`).
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

/// The user sshd's sessions run as. sshd runs every command through the
/// user's login shell, and Debian's bash reads `~/.bashrc` when started by
/// sshd, so a heavy `.bashrc` (root's here runs `pyenv init`: ~150 ms per
/// session) would be charged to the baseline. As root we therefore use a
/// system user of our own whose shell is `/bin/sh`, creating it once.
fn session_user() -> Result<String> {
    let me = id(&["-un"])?;
    if id(&["-u"])? != "0" {
        return Ok(me);
    }
    if id(&["-u", BENCH_USER]).is_err() {
        eprintln!(
            "sshpipe-bench: creating system user {BENCH_USER} (shell /bin/sh) for the sshd baseline"
        );
        let st = Command::new("useradd")
            .args(["--system", "--no-create-home", "--home-dir", "/"])
            // `*`: no password, but not locked (sshd refuses locked users).
            .args(["--password", "*", "--shell", "/bin/sh", BENCH_USER])
            .status()
            .context("cannot run useradd")?;
        if !st.success() {
            bail!("useradd {BENCH_USER} failed");
        }
    }
    Ok(BENCH_USER.to_string())
}

const BENCH_USER: &str = "sshpipe-bench";

fn id(args: &[&str]) -> Result<String> {
    let out = Command::new("id")
        .args(args)
        .output()
        .context("cannot run id")?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || text.is_empty() {
        bail!("id {} failed", args.join(" "));
    }
    Ok(text)
}

impl Sshd {
    /// Starts sampling the CPU time of sshd and all its processes.
    pub fn sample_cpu(&self) -> procfs::TreeSampler {
        procfs::TreeSampler::start(self.child.id())
    }

    /// PSS of the listener and every per-connection process under it.
    pub fn tree_pss(&self) -> Option<u64> {
        procfs::tree_pss(self.child.id())
    }
}
