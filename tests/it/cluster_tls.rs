//! TLS to NATS, as NATS users set it up (SPEC §14): nats-servers that
//! require TLS from clients and verify their certificates (`tls { verify:
//! true }`), certificates made by the test with the `openssl` CLI. A node
//! with `--nats-ca`, `--nats-cert` and `--nats-key` shares topics through
//! them; one without the CA, or without a client certificate, refuses to
//! start with one line naming the servers and exit 1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cluster::{hand_over, nats_node, plain, refused_node, urls_from};
use crate::common;
use common::TestServer;
use common::nats::NatsCluster;
use sshpipe::broker::NatsOptions;

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

/// A node on `nats` through server `i` (`tls://` URLs), with the CA and
/// the client certificate.
fn tls_node(nats: &NatsCluster, i: usize, certs: &Certs) -> TestServer {
    let urls = urls_from(nats, i, nats.len())
        .into_iter()
        .map(|u| u.replace("nats://", "tls://"))
        .collect();
    nats_node(NatsOptions {
        tls_ca: Some(certs.ca.clone()),
        tls_cert: Some(certs.client.clone()),
        ..plain(urls)
    })
}

#[test]
fn nodes_with_a_ca_and_a_client_certificate_share_topics_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let Some(nats) = tls_cluster(&certs) else {
        return;
    };
    let (a, b) = (tls_node(&nats, 0, &certs), tls_node(&nats, 1, &certs));
    hand_over(&a, &b, b"over tls\n");
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
    let refused = |more: &[&OsStr]| {
        let mut args = vec!["--broker".as_ref(), url.as_ref()];
        args.extend(more);
        refused_node(&args, "sshpipe refused by NATS's TLS")
    };

    // The servers' certificate is not trusted without the CA.
    let line = refused(&[]);
    assert!(line.starts_with(&want), "{line}");
    assert!(line.contains("certificate"), "{line}");

    // Trusted, but the servers ask for a client certificate.
    let line = refused(&["--nats-ca".as_ref(), ca]);
    assert!(line.starts_with(&want), "{line}");
    assert!(line.contains("Certificate"), "{line}");

    // A file that is not there is named.
    let missing = dir.path().join("no-such.pem");
    let no_such = format!("sshpipe: cannot read {}: ", missing.display());
    let line = refused(&["--nats-ca".as_ref(), missing.as_os_str()]);
    assert!(line.starts_with(&no_such), "{line}");
    let (_, client_key) = &certs.client;
    let line = refused(&[
        "--nats-ca".as_ref(),
        ca,
        "--nats-cert".as_ref(),
        missing.as_os_str(),
        "--nats-key".as_ref(),
        client_key.as_os_str(),
    ]);
    assert!(line.starts_with(&no_such), "{line}");
}
