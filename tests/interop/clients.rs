//! The SSH clients we did not write, each behind the `Tool` trait: how to
//! tell it is installed, convert a key to its format, and run a command on
//! the test server with it (no PTY, never a prompt).

use std::path::PathBuf;
use std::process::Command;

use crate::common::{Key, TestServer};
use crate::process::{run_bounded, run_tool};

// ------------------------------------------------------------------ keys

/// The user key types users arrive with (SPEC §3).
#[derive(Clone, Copy, Debug)]
pub enum KeyKind {
    Ed25519,
    EcdsaP256,
    Rsa3072,
}

impl KeyKind {
    fn keygen_args(self) -> &'static [&'static str] {
        match self {
            KeyKind::Ed25519 => &["-t", "ed25519"],
            KeyKind::EcdsaP256 => &["-t", "ecdsa", "-b", "256"],
            KeyKind::Rsa3072 => &["-t", "rsa", "-b", "3072"],
        }
    }
}

/// An OpenSSH-format key pair of `kind`, made with `ssh-keygen` (the
/// harness's `Key::new` makes ed25519 only).
pub fn make_key(server: &TestServer, name: &str, kind: KeyKind) -> Key {
    let path = server.dir.path().join(name);
    run_tool(
        Command::new("ssh-keygen")
            .args(["-q", "-N", "", "-C", name])
            .args(kind.keygen_args())
            .arg("-f")
            .arg(&path),
        &format!("ssh-keygen {kind:?}"),
    );
    let public = std::fs::read_to_string(path.with_extension("pub"))
        .expect("public key")
        .trim()
        .to_string();
    let out = run_tool(
        Command::new("ssh-keygen")
            .arg("-lf")
            .arg(path.with_extension("pub")),
        "ssh-keygen -lf",
    );
    let fingerprint = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("fingerprint field")
        .to_string();
    Key {
        path,
        public,
        fingerprint,
    }
}

// --------------------------------------------------------------- the trait

/// One SSH client program we did not write, readied to log in to one server
/// with one key.
pub trait Tool: Sized {
    /// Its name in messages.
    const NAME: &'static str;
    /// Ok when the client and its key tools are installed; else what is
    /// missing.
    fn available() -> Result<(), String>;
    /// Converts `key` to the client's format and fixes the options that
    /// reach `server`.
    fn new(server: &TestServer, key: &Key) -> Self;
    /// The command running `args` on the server: no PTY, never a prompt.
    fn command(&self, args: &[&str]) -> Command;
    /// stderr less the notices the client itself prints, so that what is
    /// left is what the server sent.
    fn server_stderr(stderr: &str) -> String {
        stderr.to_string()
    }
}

/// Whether this run is CI's, where a missing client is a failure.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A server, a key of `kind` and the client `T` readied for both; `None`
/// (with a message) when `T` is not installed outside CI.
pub fn setup<T: Tool>(kind: KeyKind) -> Option<(TestServer, Key, T)> {
    if let Err(why) = T::available() {
        assert!(
            !in_ci(),
            "{}: {why} (CI must have it: .ci/run installs it)",
            T::NAME
        );
        eprintln!(
            "skipping {} interop test: {why} (.ci/run installs it)",
            T::NAME
        );
        return None;
    }
    let server = TestServer::start();
    let key = make_key(&server, &format!("{}-{kind:?}", T::NAME), kind);
    let tool = T::new(&server, &key);
    Some((server, key, tool))
}

/// Whether `program args` can be started (installed and on PATH).
fn runs(program: &str, args: &[&str]) -> Result<(), String> {
    run_bounded(Command::new(program).args(args), program).map(drop)
}

/// A directory of the test's own for a client's `$HOME`, so nothing is
/// written to the real one.
fn home(server: &TestServer, name: &str) -> PathBuf {
    let dir = server.dir.path().join(format!("home-{name}"));
    std::fs::create_dir_all(&dir).expect("client home");
    dir
}

/// Appends the exec words; no agent, so only the key given is offered.
fn with_words(mut cmd: Command, args: &[&str]) -> Command {
    cmd.args(args).env_remove("SSH_AUTH_SOCK");
    cmd
}

// ---------------------------------------------------------------- paramiko

/// paramiko (PyPI), through `tests/interop/paramiko_client.py`.
pub struct Paramiko {
    port: u16,
    key: PathBuf,
    host_key: String,
}

const PARAMIKO_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/paramiko_client.py"
);

impl Tool for Paramiko {
    const NAME: &'static str = "paramiko";

    fn available() -> Result<(), String> {
        // PKey.from_path (paramiko >= 3.2) loads every key type the script
        // is given.
        let probe = "import paramiko; paramiko.PKey.from_path";
        let out = run_bounded(Command::new("python3").args(["-c", probe]), "python3")?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "python3 cannot import paramiko >= 3.2: {}",
                out.stderr.trim()
            ))
        }
    }

    fn new(server: &TestServer, key: &Key) -> Self {
        Paramiko {
            port: server.addr.port(),
            key: key.path.clone(),
            host_key: server.host_key_fingerprint.clone(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("python3");
        // The script checks the host key against this fingerprint.
        cmd.arg(PARAMIKO_SCRIPT)
            .args(["--port", &self.port.to_string(), "--key"])
            .arg(&self.key)
            .args(["--host-key", &self.host_key, "--"]);
        with_words(cmd, args)
    }
}

// ---------------------------------------------------------------- dbclient

/// Dropbear's `dbclient` (Debian `dropbear-bin`), with the key converted by
/// `dropbearconvert` (dbclient 2022.83 cannot read OpenSSH's key format).
pub struct Dropbear {
    port: u16,
    key: PathBuf,
    home: PathBuf,
}

/// What `dbclient -y -y` prints before anything else.
const DROPBEAR_NO_HOSTKEY_CHECK: &str =
    "dbclient: Caution, skipping hostkey check for 127.0.0.1\n\n";

impl Tool for Dropbear {
    const NAME: &'static str = "dbclient";

    fn available() -> Result<(), String> {
        runs("dbclient", &["-V"])?;
        runs("dropbearconvert", &[])
    }

    fn new(server: &TestServer, key: &Key) -> Self {
        let converted = key.path.with_extension("dropbear");
        run_tool(
            Command::new("dropbearconvert")
                .args(["openssh", "dropbear"])
                .arg(&key.path)
                .arg(&converted),
            "dropbearconvert",
        );
        Dropbear {
            port: server.addr.port(),
            key: converted,
            home: home(server, "dropbear"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("dbclient");
        // -y -y: no host key check at all (it has no option to pin a key,
        // and a single -y asks on the terminal); -T: no PTY.
        cmd.env("HOME", &self.home)
            .args(["-y", "-y", "-T", "-i"])
            .arg(&self.key)
            .args(["-p", &self.port.to_string(), "tester@127.0.0.1"]);
        with_words(cmd, args)
    }

    fn server_stderr(stderr: &str) -> String {
        stderr
            .strip_prefix(DROPBEAR_NO_HOSTKEY_CHECK)
            .unwrap_or(stderr)
            .to_string()
    }
}
