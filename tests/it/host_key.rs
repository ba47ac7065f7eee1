//! `--host-key FILE` (SPEC §2, §14): nodes given one key file look like one
//! host to OpenSSH, so clients behind a load balancer never see a changed
//! key; a file that is missing or not a usable ed25519 key stops the start
//! with one line and exit 1, and is never made (src/hostkey.rs says why).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{Binary, Key, Out, binary, finish};

/// The name every node is known by in the pinned known_hosts file.
const ALIAS: &str = "sshpipe-cluster";

/// A started binary, killed when the test ends, pass or fail.
struct Node(Binary);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.child.kill();
        let _ = self.0.child.wait();
    }
}

impl Node {
    /// The fingerprint in the start line (`"host_key":"SHA256:…"`).
    fn logged_fingerprint(&self) -> String {
        let log = self.0.log.lock().unwrap();
        let line = log
            .iter()
            .find(|l| l.contains("sshpipe listening"))
            .expect("a start line");
        let rest = line.split("\"host_key\":\"").nth(1).expect("host_key=");
        rest.split('"').next().unwrap().to_string()
    }
}

/// `whoami` on `port` with OpenSSH checking the host key strictly against
/// `known_hosts` under the one name `ALIAS`, whatever the port.
fn pinned_whoami(port: u16, client: &Key, known_hosts: &Path) -> Out {
    let mut cmd = Command::new("ssh");
    cmd.args([
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
    ])
    .args(["-o", "StrictHostKeyChecking=yes", "-o"])
    .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
    .args(["-o", "GlobalKnownHostsFile=/dev/null", "-o"])
    .arg(format!("HostKeyAlias={ALIAS}"))
    .arg("-i")
    .arg(&client.path)
    .args(["-p", &port.to_string(), "tester@127.0.0.1", "whoami"])
    .env_remove("SSH_AUTH_SOCK")
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    finish(cmd.spawn().unwrap(), b"", "ssh whoami, host key pinned")
}

#[test]
fn nodes_given_one_host_key_file_are_one_host_to_openssh() {
    let dir = tempfile::tempdir().unwrap();
    // Made once, as the README says: ssh-keygen's own format is read as is.
    let shared = Key::new(dir.path(), "shared_host_key");
    let client = Key::new(dir.path(), "client");
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, format!("{ALIAS} {}\n", shared.public)).unwrap();

    let mut a = binary(&dir.path().join("a"));
    a.arg("--host-key").arg(&shared.path);
    let a = Node(Binary::spawn(a));
    let mut b = binary(&dir.path().join("b"));
    b.env("SSHPIPE_HOST_KEY", &shared.path);
    let b = Node(Binary::spawn(b));
    assert_ne!(a.0.port, b.0.port);

    let mut seen = Vec::new();
    for node in [&a, &b] {
        assert_eq!(node.logged_fingerprint(), shared.fingerprint);
        let out = pinned_whoami(node.0.port, &client, &known_hosts);
        out.expect_code(0);
        assert!(
            !out.stderr.contains("WARNING") && !out.stderr.contains("IDENTIFICATION"),
            "no host key warning: {}",
            out.stderr
        );
        seen.push(out.stdout_str());
    }
    assert!(seen[0].starts_with("user: fp-"), "{}", seen[0]);
    assert_eq!(seen[0], seen[1], "the same client, the same answer");
    for node in ["a", "b"] {
        let made = dir.path().join(node).join("ssh_host_ed25519_key");
        assert!(
            !made.exists(),
            "{} was made beside the given key",
            made.display()
        );
    }

    // The pinning is real: a node with a key of its own is refused.
    let own = Node(Binary::start(&dir.path().join("c")));
    assert_ne!(own.logged_fingerprint(), shared.fingerprint);
    let out = pinned_whoami(own.0.port, &client, &known_hosts);
    assert_eq!(out.code(), 255, "{}", out.stderr);
    assert!(
        out.stderr.contains("Host key verification failed"),
        "{}",
        out.stderr
    );
}

/// Starts the binary with `--host-key file`; it must exit 1 with one line.
fn refused(data: &Path, file: &Path) -> String {
    common::refused_line(
        binary(data).arg("--host-key").arg(file),
        "sshpipe with a bad --host-key",
    )
}

#[test]
fn a_missing_or_unusable_host_key_file_is_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let missing = dir.path().join("no_such_key");
    let rsa = Key::generate(dir.path(), "rsa_key", &["-t", "rsa", "-b", "2048"]);
    let locked = dir.path().join("locked_key");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "secret", "-f"])
        .arg(&locked)
        .status()
        .unwrap();
    assert!(st.success());
    let junk = dir.path().join("junk");
    std::fs::write(&junk, "not a key\n").unwrap();
    let p = |path: &Path| path.display().to_string();
    let cases = [
        (
            missing.clone(),
            format!(
                "sshpipe: host key file {} does not exist (make it once with: ssh-keygen -t ed25519 -N '' -f {})",
                p(&missing),
                p(&missing)
            ),
        ),
        (
            rsa.path.clone(),
            format!("sshpipe: host key {} is not an ed25519 key", p(&rsa.path)),
        ),
        (
            locked.clone(),
            format!(
                "sshpipe: host key {} has a passphrase (the server needs it without one)",
                p(&locked)
            ),
        ),
        (
            dir.path().to_path_buf(),
            format!("sshpipe: host key file {} is a directory", p(dir.path())),
        ),
        (
            junk.clone(),
            format!("sshpipe: cannot read host key {}: ", p(&junk)),
        ),
    ];
    for (file, want) in cases {
        let line = refused(&data, &file);
        assert!(
            line.starts_with(&want),
            "{}: got {line:?}, want {want:?}",
            p(&file)
        );
    }
    assert!(!missing.exists(), "the missing key was not made");
    assert!(
        !data.join("ssh_host_ed25519_key").exists(),
        "no key was made in the data dir either"
    );
}
