//! The SSH clients we did not write, each behind the `Tool` trait: how to
//! tell it is installed, convert a key to its format, and run a command on
//! the test server with it (no PTY, never a prompt).

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

use super::process::{run_bounded, run_tool};
use crate::common::{Key, TestServer};

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

/// An OpenSSH-format key pair of `kind`, made with `ssh-keygen`.
pub fn make_key(server: &TestServer, name: &str, kind: KeyKind) -> Key {
    Key::generate(server.dir.path(), name, kind.keygen_args())
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

/// A directory of the test's own for a client's `$HOME` (PuTTY keeps a
/// random seed file there), so nothing is written to the real one.
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

// ------------------------------------------------------------------- plink

/// PuTTY's `plink` (Debian `putty-tools`), with the key converted to PPK by
/// `puttygen` and the server's host key pinned by fingerprint.
pub struct Plink {
    port: u16,
    key: PathBuf,
    host_key: String,
    home: PathBuf,
}

impl Plink {
    /// plink running `args`, with the extra options `opts` first.
    pub fn command_with(&self, opts: &[&OsStr], args: &[&str]) -> Command {
        let mut cmd = Command::new("plink");
        // -batch: never prompt; -hostkey: accept exactly the server's key;
        // -T: no PTY; -noagent: only the key given.
        cmd.env("HOME", &self.home)
            .args(opts)
            .args(["-batch", "-ssh", "-noagent", "-T"])
            .args(["-P", &self.port.to_string()])
            .args(["-hostkey", &self.host_key, "-i"])
            .arg(&self.key)
            .arg("tester@127.0.0.1");
        with_words(cmd, args)
    }
}

impl Tool for Plink {
    const NAME: &'static str = "plink";

    fn available() -> Result<(), String> {
        runs("plink", &["-V"])?;
        runs("puttygen", &["-V"])
    }

    fn new(server: &TestServer, key: &Key) -> Self {
        let home = home(server, "plink");
        let converted = key.path.with_extension("ppk");
        run_tool(
            Command::new("puttygen")
                .env("HOME", &home)
                .arg(&key.path)
                .args(["-O", "private", "-o"])
                .arg(&converted),
            "puttygen",
        );
        Plink {
            port: server.addr.port(),
            key: converted,
            host_key: server.host_key_fingerprint.clone(),
            home,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        self.command_with(&[], args)
    }
}

/// Takes one SSH `string` (RFC 4251 §5) off the front of `r`.
fn take_string<'a>(r: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u32::from_be_bytes(r.get(..4)?.try_into().ok()?) as usize;
    let s = r.get(4..4 + len)?;
    *r = &r[4 + len..];
    Some(s)
}

/// The algorithm of a signed `publickey` USERAUTH_REQUEST payload (RFC 4252
/// §7: user, service, "publickey", TRUE, algorithm, key, signature).
fn signed_algorithm(payload: &[u8]) -> Option<String> {
    let mut r = payload;
    take_string(&mut r)?;
    take_string(&mut r)?;
    if take_string(&mut r)? != b"publickey" || *r.first()? != 1 {
        return None;
    }
    r = &r[1..];
    Some(String::from_utf8_lossy(take_string(&mut r)?).into_owned())
}

/// The algorithms plink signed with, from its `-sshlog` packet log: each
/// packet is a header line, then lines `  OFFSET  XX XX ...(16)  ASCII`.
pub fn signed_pubkey_algorithms(log: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut lines = log.lines().peekable();
    while let Some(line) = lines.next() {
        if !(line.starts_with("Outgoing packet") && line.contains("SSH2_MSG_USERAUTH_REQUEST")) {
            continue;
        }
        let mut payload = Vec::new();
        while let Some(hex) = lines.next_if(|l| l.starts_with("  0")) {
            // The hex columns: after the offset, before the ASCII.
            let bytes = hex.get(12..hex.len().min(59)).unwrap_or("");
            payload.extend(
                bytes
                    .split_whitespace()
                    .map(|b| u8::from_str_radix(b, 16).expect("hex byte in -sshlog")),
            );
        }
        found.extend(signed_algorithm(&payload));
    }
    found
}

// ------------------------------------------------------------------ libssh

/// libssh, through `tests/interop/libssh_client.py` (PyPI ansible-pylibssh,
/// which bundles libssh 0.12). Runs commands that read no stdin, so only
/// the key-type logins use it.
pub struct Libssh {
    port: u16,
    key: PathBuf,
}

const LIBSSH_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/libssh_client.py"
);

impl Tool for Libssh {
    const NAME: &'static str = "libssh";

    fn available() -> Result<(), String> {
        let probe = "import pylibsshext.session";
        let out = run_bounded(Command::new("python3").args(["-c", probe]), "python3")?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "python3 cannot import pylibsshext (pip install ansible-pylibssh): {}",
                out.stderr.trim()
            ))
        }
    }

    fn new(server: &TestServer, key: &Key) -> Self {
        Libssh {
            port: server.addr.port(),
            key: key.path.clone(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("python3");
        cmd.arg(LIBSSH_SCRIPT)
            .arg(self.port.to_string())
            .arg(&self.key);
        with_words(cmd, args)
    }

    /// libssh notes files it could not open on stderr (`ssh_strict_fopen`).
    fn server_stderr(stderr: &str) -> String {
        stderr
            .lines()
            .filter(|l| !l.starts_with("ssh_strict_fopen"))
            .map(|l| format!("{l}\n"))
            .collect()
    }
}
