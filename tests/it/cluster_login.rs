//! Logging in to NATS as NATS users do (SPEC §14), against real
//! nats-servers that ask for it:
//! - a user and password in the `--broker` URL (`authorization { user,
//!   password }`), the servers after the first taking the same;
//! - `--nats-creds`: nats-servers in operator mode (decentralised JWT auth,
//!   the accounts preloaded) and a `.creds` file holding a user's JWT and
//!   NKey seed. The operator, accounts and user are made by the test with
//!   nkeys, their JWTs signed as `nsc` signs them.
//!
//! Two nodes that log in share a topic; a node with no login, or a wrong
//! one, stops with one line and exit 1 (never showing the password).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use super::cluster::{hand_over, nats_node, plain, refused_node, urls_from};
use crate::common;
use common::TestServer;
use common::nats::NatsCluster;
use nkeys::KeyPair;
use serde_json::json;
use sshpipe::broker::NatsOptions;

/// Base64url without padding, as JWTs are written.
fn b64url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[test]
fn base64url_is_written_without_padding() {
    for (input, want) in [
        (&b""[..], ""),
        (b"f", "Zg"),
        (b"fo", "Zm8"),
        (b"foo", "Zm9v"),
        (b"foob", "Zm9vYg"),
        (b"\xfb\xff", "-_8"),
    ] {
        assert_eq!(b64url(input), want, "{input:?}");
    }
}

/// A NATS JWT (v2, `ed25519-nkey`) for `subject`, signed by `issuer`.
fn jwt(issuer: &KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "jti": format!("{name}-{iat}"),
        "iat": iat,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let signed = format!(
        "{}.{}",
        b64url(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#),
        b64url(claims.to_string().as_bytes())
    );
    let sig = issuer.sign(signed.as_bytes()).unwrap();
    format!("{signed}.{}", b64url(&sig))
}

/// An account's claims: no limits, JetStream on if `jetstream`.
fn account_claims(jetstream: bool) -> serde_json::Value {
    let mut limits = json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
    });
    if jetstream {
        for k in [
            "mem_storage",
            "disk_storage",
            "streams",
            "consumer",
            "max_ack_pending",
        ] {
            limits[k] = json!(-1);
        }
    }
    json!({ "type": "account", "version": 2, "limits": limits })
}

/// A user of `account`, as a `.creds` file in `dir`.
fn creds(dir: &Path, account: &KeyPair, name: &str) -> PathBuf {
    let user = KeyPair::new_user();
    let token = jwt(
        account,
        &user.public_key(),
        name,
        json!({ "type": "user", "version": 2, "subs": -1, "data": -1, "payload": -1 }),
    );
    let path = dir.join(format!("{name}.creds"));
    std::fs::write(
        &path,
        format!(
            "-----BEGIN NATS USER JWT-----\n{token}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            user.seed().unwrap()
        ),
    )
    .unwrap();
    path
}

/// Three nats-servers in operator mode trusting `operator`, with a system
/// account and `app` (JetStream on) preloaded.
fn operator_cluster(operator: &KeyPair, app: &KeyPair) -> Option<NatsCluster> {
    let sys = KeyPair::new_account();
    let op_jwt = jwt(
        operator,
        &operator.public_key(),
        "op",
        json!({ "type": "operator", "version": 2 }),
    );
    let sys_jwt = jwt(operator, &sys.public_key(), "SYS", account_claims(false));
    let app_jwt = jwt(operator, &app.public_key(), "APP", account_claims(true));
    NatsCluster::start_with(
        3,
        &format!(
            "operator: \"{op_jwt}\"\nsystem_account: \"{sys}\"\nresolver: MEMORY\n\
             resolver_preload: {{\n  {sys}: \"{sys_jwt}\"\n  {app}: \"{app_jwt}\"\n}}",
            sys = sys.public_key(),
            app = app.public_key(),
        ),
    )
}

fn creds_node(nats: &NatsCluster, i: usize, creds: &Path) -> TestServer {
    nats_node(NatsOptions {
        creds: Some(creds.to_path_buf()),
        ..plain(urls_from(nats, i, nats.len()))
    })
}

#[test]
fn nodes_with_a_users_creds_share_topics() {
    let dir = tempfile::tempdir().unwrap();
    let (operator, app) = (KeyPair::new_operator(), KeyPair::new_account());
    let Some(nats) = operator_cluster(&operator, &app) else {
        return;
    };
    let file = creds(dir.path(), &app, "sshpipe");
    let (a, b) = (creds_node(&nats, 0, &file), creds_node(&nats, 1, &file));
    hand_over(&a, &b, b"with creds\n");
}

fn refused(args: &[&std::ffi::OsStr]) -> String {
    refused_node(args, "sshpipe refused by NATS")
}

#[test]
fn without_creds_or_with_a_stranger_s_a_node_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let (operator, app) = (KeyPair::new_operator(), KeyPair::new_account());
    let Some(nats) = operator_cluster(&operator, &app) else {
        return;
    };
    let url = nats.url(0);
    let want =
        format!("sshpipe: NATS at {url} refused this node's login (authorization violation): ");
    let broker = ["--broker".as_ref(), url.as_ref()];

    let line = refused(&broker);
    assert!(line.starts_with(&want), "{line}");

    // A user signed by an account the operator never signed.
    let stranger = creds(dir.path(), &KeyPair::new_account(), "stranger");
    let line = refused(&[
        broker[0],
        broker[1],
        "--nats-creds".as_ref(),
        stranger.as_os_str(),
    ]);
    assert!(line.starts_with(&want), "{line}");
}

/// Three nats-servers that ask every client for user `sshpipe`'s password.
fn password_cluster() -> Option<NatsCluster> {
    NatsCluster::start_with(
        3,
        "authorization {\n  user: sshpipe\n  password: \"right-pw\"\n}",
    )
}

/// `nats://sshpipe:PW@h1:p1,h2:p2,…` through server `i`, as typed.
fn with_password(nats: &NatsCluster, i: usize, pw: &str) -> String {
    urls_from(nats, i, nats.len())
        .iter()
        .enumerate()
        .map(|(k, u)| {
            let hostport = u.trim_start_matches("nats://");
            if k == 0 {
                format!("nats://sshpipe:{pw}@{hostport}")
            } else {
                hostport.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn nodes_with_the_password_in_their_url_share_topics() {
    let Some(nats) = password_cluster() else {
        return;
    };
    // Every URL with the login, as `--broker` expands the short form
    // (config.rs's tests); the binary is given the short form below.
    let login = |i: usize| -> Vec<String> {
        urls_from(&nats, i, nats.len())
            .iter()
            .map(|u| u.replace("nats://", "nats://sshpipe:right-pw@"))
            .collect()
    };
    let (a, b) = (nats_node(plain(login(0))), nats_node(plain(login(1))));
    hand_over(&a, &b, b"with a password\n");
}

#[test]
fn without_the_password_or_with_a_wrong_one_a_node_refuses_to_start() {
    let Some(nats) = password_cluster() else {
        return;
    };
    let bare = nats.url(0);
    let line = refused(&["--broker".as_ref(), bare.as_ref()]);
    assert!(
        line.starts_with(&format!(
            "sshpipe: NATS at {bare} refused this node's login (authorization violation): "
        )),
        "{line}"
    );
    // The short form: the servers after the first take its login.
    let wrong = with_password(&nats, 0, "wrong-pw");
    let line = refused(&["--broker".as_ref(), wrong.as_ref()]);
    assert!(
        line.starts_with(&format!("sshpipe: NATS at {bare},nats://127.0.0.1:")),
        "{line}"
    );
    assert!(line.contains("refused this node's login"), "{line}");
    assert!(!line.contains("wrong-pw"), "the password was shown: {line}");
}
