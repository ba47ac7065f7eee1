//! TLS to NATS, as NATS users set it up (SPEC §14): nats-servers that
//! require TLS from clients and verify their certificates (`tls { verify:
//! true }`), certificates made by the test with the `openssl` CLI. A node
//! with `--nats-ca`, `--nats-cert` and `--nats-key` shares topics through
//! them; one without the CA, or without a client certificate, refuses to
//! start with one line naming the servers and exit 1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::cluster::urls_from;
use crate::common;
use common::nats::NatsCluster;
use common::{Key, TestServer, wait_child};
use sshpipe::broker::{BackendKind, NatsOptions};

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all
/// signed by that CA (PEM files in `dir`).
struct Certs {
    ca: PathBuf,
    server: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (apt-get install openssl): {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_certs(dir: &Path) -> Certs {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=sshpipe test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(dir, &ca);
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for who in ["server", "client"] {
        let (key, csr, pem, ext) = (
            format!("{who}.key"),
            format!("{who}.csr"),
            format!("{who}.pem"),
            format!("{who}.ext"),
        );
        let subj = format!("/CN={who}");
        let mut req = vec!["req", "-subj", &subj];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr]);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &pem,
            ],
        );
    }
    Certs {
        ca: dir.join("ca.pem"),
        server: (dir.join("server.pem"), dir.join("server.key")),
        client: (dir.join("client.pem"), dir.join("client.key")),
    }
}

/// Three nats-servers that require TLS from clients and verify them.
fn tls_cluster(certs: &Certs) -> Option<NatsCluster> {
    NatsCluster::start_with(
        3,
        &format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: true\n}}",
            certs.server.0.display(),
            certs.server.1.display(),
            certs.ca.display()
        ),
    )
}

/// A node on `nats` through server `i`, with the CA and the client
/// certificate.
fn tls_node(nats: &NatsCluster, i: usize, certs: &Certs) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = common::options_for(&dir.path().join("data"));
    let mut broker = common::test_broker();
    broker.backend = BackendKind::Nats(NatsOptions {
        urls: urls_from(nats, i, nats.len())
            .into_iter()
            .map(|u| u.replace("nats://", "tls://"))
            .collect(),
        creds: None,
        tls_ca: Some(certs.ca.clone()),
        tls_cert: Some(certs.client.clone()),
        replicas: 3,
    });
    opts.broker = broker;
    TestServer::from_options(opts, dir)
}

#[test]
fn nodes_with_a_ca_and_a_client_certificate_share_topics_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let Some(nats) = tls_cluster(&certs) else {
        return;
    };
    let (a, b) = (tls_node(&nats, 0, &certs), tls_node(&nats, 1, &certs));
    let key = Key::new(a.dir.path(), "alice");
    let sub = b
        .ssh(&key, &["sub", "t"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // On its own node; the pub on A then waits until A hears of it.
    super::cluster::receivers(&b, &format!("{}/t", user(&a, &key)), 1);
    let out = a.run(&key, &["pub", "t"], b"over tls\n");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let got = sub.wait_with_output().unwrap();
    assert!(got.status.success(), "{:?}", got.status);
    assert_eq!(got.stdout, b"over tls\n");
}

/// The user `key` logs in as, by `whoami` on `on`.
fn user(on: &TestServer, key: &Key) -> String {
    let who = on.run(key, &["whoami"], b"").stdout_str();
    who.lines()
        .find_map(|l| l.strip_prefix("user: "))
        .unwrap_or_else(|| panic!("no user in {who:?}"))
        .to_string()
}

/// The binary's start-up on `broker` with `args`: it must exit 1 with one
/// line, which is returned.
fn refused(broker: &str, args: &[&std::ffi::OsStr]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = common::binary_with_http(&dir.path().join("data"), "off");
    cmd.arg("--broker")
        .arg(broker)
        .args(args)
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let status = wait_child(&mut child, "sshpipe refused by NATS's TLS");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    lines[0].to_string()
}

#[test]
fn without_the_ca_or_a_client_certificate_a_node_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let Some(nats) = tls_cluster(&certs) else {
        return;
    };
    let url = nats.url(0).replace("nats://", "tls://");
    let want = format!("sshpipe: cannot reach NATS at {url}: ");
    let ca = certs.ca.as_os_str();

    // The servers' certificate is not trusted without the CA.
    let line = refused(&url, &[]);
    assert!(line.starts_with(&want), "{line}");
    assert!(line.contains("certificate"), "{line}");

    // Trusted, but the servers ask for a client certificate.
    let line = refused(&url, &["--nats-ca".as_ref(), ca]);
    assert!(line.starts_with(&want), "{line}");
    assert!(line.contains("Certificate"), "{line}");

    // A file that is not there is named.
    let missing = dir.path().join("no-such.pem");
    let no_such = format!("sshpipe: cannot read {}: ", missing.display());
    let line = refused(&url, &["--nats-ca".as_ref(), missing.as_os_str()]);
    assert!(line.starts_with(&no_such), "{line}");
    let (_, client_key) = &certs.client;
    let line = refused(
        &url,
        &[
            "--nats-ca".as_ref(),
            ca,
            "--nats-cert".as_ref(),
            missing.as_os_str(),
            "--nats-key".as_ref(),
            client_key.as_os_str(),
        ],
    );
    assert!(line.starts_with(&no_such), "{line}");
}
