//! Keys, attempts, certificates and key exchange (SPEC §2, §3, §9), seen by
//! clients we did not write: OpenSSH's `ssh`, paramiko (tests/py) and
//! ssh-audit. The Python tools are skipped with a message where they are
//! missing, except under CI, where `.ci/run` installs them and a missing
//! one fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::common;
use common::*;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sshpipe::config::KexPolicy;
use sshpipe::identity::AuthMode;
use sshpipe::ssh::SshLimits;

// ---------------------------------------------------------------- helpers

/// Every key type SPEC §3 accepts, as `ssh-keygen` arguments.
const KEY_TYPES: &[(&str, &[&str])] = &[
    ("ed25519", &["-t", "ed25519"]),
    ("ecdsa256", &["-t", "ecdsa", "-b", "256"]),
    ("ecdsa384", &["-t", "ecdsa", "-b", "384"]),
    ("ecdsa521", &["-t", "ecdsa", "-b", "521"]),
    ("rsa2048", &["-t", "rsa", "-b", "2048"]),
    ("rsa3072", &["-t", "rsa", "-b", "3072"]),
];

/// `ssh` with `opts` first (they win), then the harness defaults.
fn ssh(server: &TestServer, key: &Key, opts: &[&str], args: &[&str]) -> Out {
    let child = server
        .ssh_with(key, opts, args)
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ssh");
    finish(child, b"", &format!("ssh {opts:?} {args:?}"))
}

/// `whoami` as the given user and fingerprint.
fn whoami(name: &str, fingerprint: &str) -> String {
    format!("user: {name}\nfingerprint: {fingerprint}\nadmin: no\n")
}

fn assert_logged_in_as(out: &Out, name: &str, fingerprint: &str, ctx: &str) {
    assert_eq!(out.code(), 0, "{ctx}: stderr: {}", out.stderr);
    assert_eq!(out.stdout_str(), whoami(name, fingerprint), "{ctx}");
}

fn assert_refused(out: &Out, ctx: &str) {
    assert_eq!(out.code(), 255, "{ctx}: stdout: {}", out.stdout_str());
    assert!(out.stdout.is_empty(), "{ctx}");
    assert!(
        out.stderr.contains("Permission denied (publickey)"),
        "{ctx}: {}",
        out.stderr
    );
}

/// Is the Python tool there? Under CI a missing one fails the test: `.ci/run`
/// must install it.
fn have_python_tool(what: &str, check: &mut Command) -> bool {
    let ok = check
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{what} is missing under CI: .ci/run must install it"
        );
        // Straight to stderr: the test harness captures println!/eprintln!
        // of passing tests, and a skip should be seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {what} is not installed (pip install -r .ci/requirements.txt)"
        );
    }
    ok
}

fn have_paramiko() -> bool {
    have_python_tool(
        "paramiko >= 5.1",
        Command::new("python3").args([
            "-c",
            "import paramiko, sys; v = tuple(int(x) for x in paramiko.__version__.split('.')[:2]); sys.exit(v < (5, 1))",
        ]),
    )
}

fn have_ssh_audit() -> bool {
    have_python_tool("ssh-audit", Command::new("ssh-audit").arg("--help"))
}

/// What `tests/py/paramiko_login.py` reports.
struct Paramiko(serde_json::Value);

impl Paramiko {
    fn ok(&self) -> bool {
        self.0["ok"] == true
    }
    fn kex(&self) -> &str {
        self.0["kex"].as_str().unwrap_or("")
    }
    fn stdout(&self) -> &str {
        self.0["stdout"].as_str().unwrap_or("")
    }
}

impl std::fmt::Debug for Paramiko {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Logs in with paramiko offering `keys` in order, runs `whoami`.
fn paramiko(server: &TestServer, keys: &[&Key], extra: &[&str]) -> Paramiko {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/paramiko_login.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .args(["--port", &server.addr.port().to_string()])
        .args(extra);
    for k in keys {
        cmd.arg("--key").arg(&k.path);
    }
    let child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let out = finish(child, b"", "paramiko_login.py");
    out.expect_code(0);
    let text = out.stdout_str();
    Paramiko(serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "paramiko_login.py printed no JSON ({e}): {text} {}",
            out.stderr
        )
    }))
}

fn users_server(users: &[(&str, &Key)], limits: SshLimits) -> TestServer {
    TestServer::with(Config {
        users_toml: Some(users_toml(users)),
        auth: AuthMode::Users,
        ssh_limits: limits,
        ..Default::default()
    })
}

// ---------------------------------------------------------------- key types

#[test]
fn every_key_type_logs_in_with_openssh() {
    let server = TestServer::start();
    for (name, keygen) in KEY_TYPES {
        let key = Key::generate(server.dir.path(), name, keygen);
        let out = ssh(&server, &key, &[], &["whoami"]);
        assert_logged_in_as(&out, &key.anonymous_name(), &key.fingerprint, name);
    }
}

#[test]
fn every_key_type_logs_in_with_paramiko() {
    if !have_paramiko() {
        return;
    }
    let server = TestServer::start();
    for (name, keygen) in KEY_TYPES {
        let key = Key::generate(server.dir.path(), name, keygen);
        let r = paramiko(&server, &[&key], &[]);
        assert!(r.ok(), "{name}: {r:?}");
        assert_eq!(
            r.stdout(),
            whoami(&key.anonymous_name(), &key.fingerprint),
            "{name}"
        );
    }
}

#[test]
fn server_sig_algs_lists_every_key_type_and_the_host_key_stays_ed25519() {
    let server = TestServer::start();
    let key = server.key("k");
    let out = ssh(&server, &key, &["-o", "LogLevel=DEBUG2"], &["whoami"]);
    out.expect_code(0);
    let sig_algs = out
        .stderr
        .lines()
        .find_map(|l| l.split_once("server-sig-algs=<").map(|(_, r)| r))
        .and_then(|r| r.strip_suffix('>'))
        .unwrap_or_else(|| panic!("no server-sig-algs: {}", out.stderr));
    assert_eq!(
        sig_algs,
        "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256"
    );
    // The server's KEXINIT: only the host key it has.
    let proposal = out
        .stderr
        .split("peer server KEXINIT proposal")
        .nth(1)
        .unwrap_or_else(|| panic!("no server proposal: {}", out.stderr));
    let host_keys = proposal
        .lines()
        .find_map(|l| l.strip_prefix("debug2: host key algorithms: "))
        .expect("host key algorithms line");
    assert_eq!(host_keys, "ssh-ed25519");
}

#[test]
fn sha1_rsa_signatures_are_refused_and_sha2_ones_work() {
    let server = TestServer::start();
    let key = Key::generate(server.dir.path(), "rsa", &["-t", "rsa", "-b", "2048"]);
    let anon = key.anonymous_name();
    for algos in ["ssh-rsa", "+ssh-rsa"] {
        let opt = format!("PubkeyAcceptedAlgorithms={algos}");
        let out = ssh(&server, &key, &["-o", &opt], &["whoami"]);
        if algos == "ssh-rsa" {
            assert_refused(&out, &opt);
        } else {
            // Adding ssh-rsa changes nothing: the server offers SHA-2.
            assert_logged_in_as(&out, &anon, &key.fingerprint, &opt);
        }
    }
    for algos in ["rsa-sha2-512", "rsa-sha2-256"] {
        let opt = format!("PubkeyAcceptedAlgorithms={algos}");
        let out = ssh(&server, &key, &["-o", &opt], &["whoami"]);
        assert_logged_in_as(&out, &anon, &key.fingerprint, &opt);
    }
    // OpenSSH will not even send ssh-rsa to us; paramiko made to sign with
    // SHA-1 anyway shows that the server itself refuses it.
    if have_paramiko() {
        let r = paramiko(&server, &[&key], &["--force-ssh-rsa"]);
        assert!(!r.ok(), "ssh-rsa signature accepted: {r:?}");
        let r = paramiko(&server, &[&key], &[]);
        assert!(r.ok(), "{r:?}");
    }
}

#[test]
fn rsa_keys_under_2048_bits_are_refused() {
    let server = TestServer::start();
    let key = Key::generate(server.dir.path(), "rsa1024", &["-t", "rsa", "-b", "1024"]);
    let out = ssh(&server, &key, &[], &["whoami"]);
    assert_refused(&out, "1024-bit RSA");
}

// ---------------------------------------------------------------- attempts

/// `n` keys the users file does not list, named `TAG-N`.
fn strangers(server: &TestServer, tag: &str, n: usize) -> Vec<Key> {
    (0..n).map(|i| server.key(&format!("{tag}-{i}"))).collect()
}

/// `-i` options for `keys`, to try them before the harness's own key.
fn identity_opts(keys: &[Key]) -> Vec<&str> {
    keys.iter()
        .flat_map(|k| ["-i", k.path.to_str().expect("utf-8 path")])
        .collect()
}

#[test]
fn six_keys_are_tried_and_the_none_probe_is_not_one() {
    let dir = tempfile::tempdir().unwrap();
    let alice = Key::new(dir.path(), "alice");
    let server = users_server(&[("alice", &alice)], SshLimits::default());
    let five = strangers(&server, "five", 5);
    let out = ssh(&server, &alice, &identity_opts(&five), &["whoami"]);
    assert_logged_in_as(
        &out,
        "alice",
        &alice.fingerprint,
        "5 unknown keys, then alice's",
    );

    let six = strangers(&server, "six", 6);
    let out = ssh(&server, &alice, &identity_opts(&six), &["whoami"]);
    assert_eq!(
        out.code(),
        255,
        "the 7th key was tried: {}",
        out.stdout_str()
    );
    assert!(
        out.stderr.contains("Too many authentication attempts"),
        "{}",
        out.stderr
    );
}

#[test]
fn max_auth_attempts_is_the_number_of_keys_tried() {
    let dir = tempfile::tempdir().unwrap();
    let alice = Key::new(dir.path(), "alice");
    let limits = SshLimits {
        max_auth_attempts: 2,
        ..Default::default()
    };
    let server = users_server(&[("alice", &alice)], limits);
    let out = ssh(
        &server,
        &alice,
        &identity_opts(&strangers(&server, "one", 1)),
        &["whoami"],
    );
    assert_logged_in_as(
        &out,
        "alice",
        &alice.fingerprint,
        "1 unknown key, then alice's",
    );
    let out = ssh(
        &server,
        &alice,
        &identity_opts(&strangers(&server, "two", 2)),
        &["whoami"],
    );
    assert!(
        out.stderr.contains("Too many authentication attempts"),
        "{}",
        out.stderr
    );
}

/// An auth time limit that a client paying a second per refused key, or
/// waiting for an unanswered request, cannot meet.
fn short_auth_timeout() -> SshLimits {
    SshLimits {
        auth_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

#[test]
fn after_refused_keys_openssh_logs_in_well_within_the_auth_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let alice = Key::new(dir.path(), "alice");
    let server = users_server(&[("alice", &alice)], short_auth_timeout());
    let out = ssh(
        &server,
        &alice,
        &identity_opts(&strangers(&server, "five", 5)),
        &["whoami"],
    );
    assert_logged_in_as(
        &out,
        "alice",
        &alice.fingerprint,
        "5 refused keys, --auth-timeout 5s",
    );
}

#[test]
fn after_a_refused_key_paramiko_logs_in_well_within_the_auth_timeout() {
    if !have_paramiko() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let alice = Key::new(dir.path(), "alice");
    let server = users_server(&[("alice", &alice)], short_auth_timeout());
    // paramiko signs without probing, so this is a refused *signed* attempt,
    // and it asks for the ssh-userauth service again before the next key.
    let stranger = server.key("stranger");
    let r = paramiko(&server, &[&stranger, &alice], &[]);
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.stdout(), whoami("alice", &alice.fingerprint));
}

// ---------------------------------------------------------------- certificates

/// A CA and a signer of user certificates with `ssh-keygen -s`.
struct Ca {
    key: Key,
    dir: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Ca {
        Ca {
            key: Key::new(dir, name),
            dir: dir.to_path_buf(),
        }
    }

    /// Signs `user`'s key with `ssh-keygen -s CA -I id ARGS`; returns the
    /// certificate's path (`NAME.cert`, so `ssh` only uses it when told).
    fn sign(&self, user: &Key, name: &str, args: &[&str]) -> PathBuf {
        let out = Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(&self.key.path)
            .args(["-I", name])
            .args(args)
            .arg(user.path.with_extension("pub"))
            .output()
            .expect("ssh-keygen -s");
        assert!(
            out.status.success(),
            "ssh-keygen -s {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let made = PathBuf::from(format!("{}-cert.pub", user.path.display()));
        let cert = self.dir.join(format!("{name}.cert"));
        std::fs::rename(made, &cert).unwrap();
        cert
    }
}

/// `ssh` offering the certificate first, then the plain key, with the
/// debug lines that show which one the server accepted.
fn ssh_cert(server: &TestServer, key: &Key, cert: &Path) -> Out {
    let opt = format!("CertificateFile={}", cert.display());
    ssh(
        server,
        key,
        &["-o", "LogLevel=DEBUG", "-o", &opt],
        &["whoami"],
    )
}

/// The server never said PK_OK to the certificate: OpenSSH went straight to
/// the plain key.
fn assert_cert_refused_before_signing(out: &Out, ctx: &str) {
    let offered = out
        .stderr
        .lines()
        .any(|l| l.contains("Offering public key") && l.contains("-CERT"));
    assert!(
        offered,
        "{ctx}: the certificate was not offered: {}",
        out.stderr
    );
    let accepted = out
        .stderr
        .lines()
        .any(|l| l.contains("Server accepts key") && l.contains("-CERT"));
    assert!(
        !accepted,
        "{ctx}: PK_OK for a refused certificate: {}",
        out.stderr
    );
}

/// A users-mode server that trusts `ca`, whose users file lists alice with
/// no key (a certificate is her only way in) and `extra`.
fn cert_server(ca: &Ca, extra: &[(&str, &Key)]) -> TestServer {
    let mut users = String::from("[users.alice]\nkeys = []\n\n");
    users.push_str(&users_toml(extra));
    TestServer::with(Config {
        users_toml: Some(users),
        auth: AuthMode::Users,
        trusted_user_ca: Some(format!("# test CA\n\n{}\n", ca.key.public)),
        ..Default::default()
    })
}

#[test]
fn a_trusted_certificate_logs_in_as_its_principal() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let server = cert_server(&ca, &[]);
    let key = Key::new(dir.path(), "laptop");
    // Principals that name nobody are passed over: an invalid name, a
    // reserved one, a valid name not in the users file.
    let cert = ca.sign(&key, "alice-laptop", &["-n", "Alice,public,carol,alice"]);
    let out = ssh_cert(&server, &key, &cert);
    // The fingerprint is the certified key's (ssh-keygen -lf prints the same
    // for the key and its certificate).
    assert_logged_in_as(&out, "alice", &key.fingerprint, "trusted certificate");

    let cert = ca.sign(&key, "windowed", &["-n", "alice", "-V", "-5m:+5m"]);
    let out = ssh_cert(&server, &key, &cert);
    assert_logged_in_as(
        &out,
        "alice",
        &key.fingerprint,
        "inside its validity interval",
    );

    let cert = ca.sign(
        &key,
        "from-here",
        &[
            "-n",
            "alice",
            "-O",
            "source-address=10.0.0.0/8,127.0.0.1/32",
        ],
    );
    let out = ssh_cert(&server, &key, &cert);
    assert_logged_in_as(
        &out,
        "alice",
        &key.fingerprint,
        "source-address includes us",
    );
}

#[test]
fn in_open_mode_a_certificate_names_any_valid_user() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let server = TestServer::with(Config {
        trusted_user_ca: Some(ca.key.public.clone()),
        ..Default::default()
    });
    let key = Key::new(dir.path(), "laptop");
    let cert = ca.sign(&key, "carol", &["-n", "fp-AAAAAAAAAAAAAAAA,carol"]);
    let out = ssh_cert(&server, &key, &cert);
    assert_logged_in_as(&out, "carol", &key.fingerprint, "open mode");
}

#[test]
fn a_certificate_from_an_untrusted_ca_falls_back_to_the_plain_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let rogue = Ca::new(dir.path(), "rogue");
    let bob = Key::new(dir.path(), "bob");
    let server = cert_server(&ca, &[("bob", &bob)]);
    let cert = rogue.sign(&bob, "rogue-alice", &["-n", "alice"]);
    let out = ssh_cert(&server, &bob, &cert);
    assert_cert_refused_before_signing(&out, "untrusted CA");
    assert_logged_in_as(
        &out,
        "bob",
        &bob.fingerprint,
        "plain key after the certificate",
    );

    // A key the users file does not list has nothing to fall back to.
    let stranger = Key::new(dir.path(), "stranger");
    let cert = rogue.sign(&stranger, "rogue-stranger", &["-n", "alice"]);
    let out = ssh_cert(&server, &stranger, &cert);
    assert_cert_refused_before_signing(&out, "untrusted CA, unlisted key");
    assert_refused(&out, "untrusted CA, unlisted key");
}

#[test]
fn certificates_that_break_a_rule_are_refused_before_signing() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let server = cert_server(&ca, &[]);
    let key = Key::new(dir.path(), "laptop");
    let cases: &[(&str, &[&str])] = &[
        ("expired", &["-n", "alice", "-V", "20000101:20000102"]),
        ("not-yet-valid", &["-n", "alice", "-V", "+1d:+2d"]),
        (
            "elsewhere",
            &["-n", "alice", "-O", "source-address=10.0.0.0/8,::1"],
        ),
        ("no-valid-principal", &["-n", "Alice,public,fp-x,carol"]),
        ("force-command", &["-n", "alice", "-O", "force-command=ls"]),
        ("verify-required", &["-n", "alice", "-O", "verify-required"]),
    ];
    for (name, args) in cases {
        let cert = ca.sign(&key, name, args);
        let out = ssh_cert(&server, &key, &cert);
        assert_cert_refused_before_signing(&out, name);
        assert_refused(&out, name);
    }
}

// ---------------------------------------------------------------- key exchange

#[test]
fn paramiko_negotiates_mlkem768x25519() {
    if !have_paramiko() {
        return;
    }
    let server = TestServer::start();
    let key = server.key("k");
    let r = paramiko(&server, &[&key], &[]);
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.kex(), "mlkem768x25519-sha256", "{r:?}");
    assert_eq!(r.stdout(), whoami(&key.anonymous_name(), &key.fingerprint));
    // Without ML-KEM, compat falls back to curve25519 (paramiko has only the
    // @libssh.org name).
    let r = paramiko(&server, &[&key], &["--no-mlkem"]);
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.kex(), "curve25519-sha256@libssh.org", "{r:?}");
}

#[test]
fn post_quantum_kex_refuses_clients_without_mlkem() {
    let server = TestServer::with(Config {
        kex: KexPolicy::PostQuantum,
        ..Default::default()
    });
    let key = server.key("k");
    // An OpenSSH without ML-KEM (before 9.9): what Debian 12's 9.2 offers.
    let old_kex = "KexAlgorithms=sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org";
    // (ssh says why only at LogLevel INFO or above.)
    let out = ssh(
        &server,
        &key,
        &["-o", "LogLevel=INFO", "-o", old_kex],
        &["whoami"],
    );
    assert_eq!(out.code(), 255, "{}", out.stderr);
    assert!(
        out.stderr.contains("no matching key exchange method found")
            && out.stderr.contains(
                "Their offer: mlkem768x25519-sha256,ext-info-s,kex-strict-s-v00@openssh.com"
            ),
        "{}",
        out.stderr
    );
    if have_paramiko() {
        let r = paramiko(&server, &[&key], &[]);
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.kex(), "mlkem768x25519-sha256");
        let r = paramiko(&server, &[&key], &["--no-mlkem"]);
        assert!(!r.ok(), "{r:?}");
    }
}

#[test]
fn compat_kex_serves_openssh_without_mlkem_with_curve25519() {
    let server = TestServer::start();
    let key = server.key("k");
    let out = ssh(&server, &key, &["-o", "LogLevel=DEBUG"], &["whoami"]);
    out.expect_code(0);
    let kex = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("debug1: kex: algorithm: "))
        .unwrap_or_else(|| panic!("no kex line: {}", out.stderr));
    let want = if openssh_has_mlkem() {
        "mlkem768x25519-sha256"
    } else {
        "curve25519-sha256"
    };
    assert_eq!(kex, want);
}

/// Does this `ssh` know ML-KEM (OpenSSH >= 9.9)? Debian 12's 9.2 does not.
fn openssh_has_mlkem() -> bool {
    let out = Command::new("ssh").args(["-Q", "kex"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l == "mlkem768x25519-sha256")
}

/// ssh-audit's JSON report of `server`: (exit status, report).
fn ssh_audit(server: &TestServer) -> (i32, serde_json::Value) {
    let child = Command::new("ssh-audit")
        .args(["-j", "--skip-rate-test", "-t", "20", "-p"])
        .arg(server.addr.port().to_string())
        .arg("127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssh-audit runs");
    let out = collect(child, "ssh-audit");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ssh-audit printed no JSON ({e}): {} {}",
            out.stdout_str(),
            out.stderr
        )
    });
    (out.code(), report)
}

/// `(section, algorithm, level, note)` for every fail and warn in a report.
fn audit_findings(report: &serde_json::Value) -> Vec<(String, String, String, String)> {
    let mut found = Vec::new();
    for section in ["kex", "key", "enc", "mac"] {
        let algos = report[section]
            .as_array()
            .unwrap_or_else(|| panic!("no {section}: {report}"));
        assert!(!algos.is_empty(), "{section} empty: {report}");
        for a in algos {
            for level in ["fail", "warn"] {
                for note in a["notes"][level].as_array().into_iter().flatten() {
                    found.push((
                        section.to_string(),
                        a["algorithm"].as_str().unwrap_or("?").to_string(),
                        level.to_string(),
                        note.as_str().unwrap_or("?").to_string(),
                    ));
                }
            }
        }
    }
    found
}

fn algorithms(report: &serde_json::Value, section: &str) -> Vec<String> {
    report[section]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["algorithm"].as_str().map(str::to_string))
        .collect()
}

/// What must hold in both policies: ed25519 only, the ciphers and MACs of
/// SPEC §9, no CVE, nothing recommended.
fn assert_audit_common(report: &serde_json::Value) {
    assert_eq!(algorithms(report, "key"), ["ssh-ed25519"]);
    assert_eq!(
        algorithms(report, "enc"),
        [
            "chacha20-poly1305@openssh.com",
            "aes256-gcm@openssh.com",
            "aes128-gcm@openssh.com",
            "aes256-ctr",
            "aes192-ctr",
            "aes128-ctr"
        ]
    );
    assert_eq!(
        algorithms(report, "mac"),
        [
            "hmac-sha2-512-etm@openssh.com",
            "hmac-sha2-256-etm@openssh.com"
        ]
    );
    assert_eq!(report["cves"], serde_json::json!([]), "{report}");
    let recommendations = &report["recommendations"];
    assert!(
        recommendations.as_object().is_none_or(|r| r.is_empty()),
        "ssh-audit recommends changes: {recommendations}"
    );
}

#[test]
fn ssh_audit_finds_no_fail_and_no_warn_with_post_quantum_kex() {
    if !have_ssh_audit() {
        return;
    }
    let server = TestServer::with(Config {
        kex: KexPolicy::PostQuantum,
        ..Default::default()
    });
    let (code, report) = ssh_audit(&server);
    assert_eq!(audit_findings(&report), [], "{report}");
    // ssh-audit's exit status: 0 good, 2 warning, 3 failure.
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        algorithms(&report, "kex"),
        [
            "mlkem768x25519-sha256",
            "ext-info-s",
            "kex-strict-s-v00@openssh.com"
        ]
    );
    assert_audit_common(&report);
}

#[test]
fn ssh_audit_warns_only_on_curve25519_with_compat_kex() {
    if !have_ssh_audit() {
        return;
    }
    let server = TestServer::start();
    let (code, report) = ssh_audit(&server);
    let findings = audit_findings(&report);
    let mut warned: Vec<&str> = Vec::new();
    for (section, algorithm, level, note) in &findings {
        assert_eq!(
            (section.as_str(), level.as_str()),
            ("kex", "warn"),
            "{algorithm}: {note}"
        );
        assert!(note.contains("post-quantum"), "{algorithm}: {note}");
        warned.push(algorithm);
    }
    assert_eq!(
        warned,
        ["curve25519-sha256", "curve25519-sha256@libssh.org"],
        "{report}"
    );
    assert_eq!(code, 2, "warnings only: {report}");
    assert_eq!(
        algorithms(&report, "kex"),
        [
            "mlkem768x25519-sha256",
            "curve25519-sha256",
            "curve25519-sha256@libssh.org",
            "ext-info-s",
            "kex-strict-s-v00@openssh.com"
        ]
    );
    assert_audit_common(&report);
}

// ---------------------------------------------------------------- the binary

/// The `sshpipe` binary with none of our variables inherited.
fn sshpipe(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sshpipe"));
    for (var, _) in std::env::vars() {
        if var.starts_with("SSHPIPE_") {
            cmd.env_remove(var);
        }
    }
    cmd.args([
        "--ssh-listen",
        "127.0.0.1:0",
        "--http-listen",
        "off",
        "--log-format",
        "json",
    ])
    .arg("--data-dir")
    .arg(data)
    .env("RUST_LOG", "info")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

#[test]
fn a_bad_trusted_ca_line_is_a_start_up_error_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Key::new(dir.path(), "ca");
    let file = dir.path().join("cas");
    std::fs::write(
        &file,
        format!("# CAs\n{}\n\nssh-ed25519 AAAAnot-a-key\n", ca.public),
    )
    .unwrap();
    let short = Key::generate(dir.path(), "short", &["-t", "rsa", "-b", "1024"]);
    let short_file = dir.path().join("short-cas");
    std::fs::write(&short_file, format!("{}\n", short.public)).unwrap();
    let missing = dir.path().join("missing");
    let cases = [
        (&file, "line 4: not an OpenSSH public key"),
        (&short_file, "line 1: CA key refused: RSA key of 1024 bits"),
        (&missing, "cannot read trusted user CA file"),
    ];
    for (path, needle) in cases {
        for via_env in [false, true] {
            let mut cmd = sshpipe(&dir.path().join("data"));
            if via_env {
                cmd.env("SSHPIPE_TRUSTED_USER_CA", path);
            } else {
                cmd.arg("--trusted-user-ca").arg(path);
            }
            let out = collect(cmd.spawn().unwrap(), "sshpipe with a bad CA file");
            assert_ne!(out.code(), 0, "{needle}");
            let lines: Vec<&str> = out.stderr.lines().collect();
            assert_eq!(lines.len(), 1, "one line: {}", out.stderr);
            assert!(
                lines[0].contains(needle) && lines[0].contains(&path.display().to_string()),
                "{needle} (env: {via_env}): {}",
                out.stderr
            );
        }
    }
}

/// A started binary; killed on drop.
struct Running {
    child: Child,
    port: u16,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary and reads its SSH port from the start line.
fn start_binary(mut cmd: Command) -> Running {
    let mut child = cmd.spawn().expect("sshpipe starts");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // {"…","fields":{"message":"sshpipe listening","ssh":"127.0.0.1:PORT",…}}
            if let Some((_, rest)) = line.split_once("\"ssh\":\"127.0.0.1:") {
                let _ = tx.send(rest.split('"').next().and_then(|p| p.parse::<u16>().ok()));
            }
        }
    });
    let port = rx.recv_timeout(WAIT).ok().flatten();
    let running = Running {
        child,
        port: port.unwrap_or(0),
    };
    assert!(port.is_some(), "no start line with the SSH address");
    running
}

#[test]
fn kex_and_trusted_ca_also_read_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let cas = dir.path().join("cas");
    std::fs::write(&cas, &ca.key.public).unwrap();
    let mut cmd = sshpipe(&dir.path().join("data"));
    cmd.env("SSHPIPE_KEX", "post-quantum")
        .env("SSHPIPE_TRUSTED_USER_CA", &cas);
    let srv = start_binary(cmd);
    let key = Key::new(dir.path(), "laptop");
    let cert = ca.sign(&key, "dana", &["-n", "dana"]);
    let run = |opts: &[&str]| {
        let mut c = Command::new("ssh");
        c.args(opts)
            .args(CLIENT_OPTS)
            .args(["-o", "LogLevel=ERROR", "-i"])
            .arg(&key.path)
            .args(["-p", &srv.port.to_string(), "tester@127.0.0.1", "whoami"])
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        finish(c.spawn().unwrap(), b"", "ssh to the binary")
    };
    // SSHPIPE_KEX: an OpenSSH without ML-KEM finds no key exchange.
    let out = run(&["-o", "LogLevel=INFO"]);
    if openssh_has_mlkem() {
        out.expect_code(0);
    } else {
        assert_eq!(out.code(), 255, "{}", out.stderr);
        assert!(
            out.stderr.contains("no matching key exchange method"),
            "{}",
            out.stderr
        );
    }
    // SSHPIPE_TRUSTED_USER_CA, seen through a client that has ML-KEM.
    if have_paramiko() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/paramiko_login.py");
        // paramiko picks up KEY-cert.pub beside KEY.
        std::fs::copy(
            &cert,
            PathBuf::from(format!("{}-cert.pub", key.path.display())),
        )
        .unwrap();
        let out = Command::new("python3")
            .arg(script)
            .args(["--port", &srv.port.to_string(), "--key"])
            .arg(&key.path)
            .output()
            .unwrap();
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["kex"], "mlkem768x25519-sha256", "{r}");
        assert_eq!(r["stdout"], whoami("dana", &key.fingerprint), "{r}");
    }
}
