//! Interop (GUIDE §4): SSH clients we did not write — paramiko, Dropbear's
//! `dbclient`, PuTTY's `plink` (and libssh, for logins only) — against the
//! real in-process server. Each
//! client runs `whoami` with ed25519, ECDSA (nistp256) and RSA 3072 keys,
//! moves 20 MiB of random binary byte-exact in both directions with OpenSSH
//! on the other end, and sees the exit statuses 0/1/2 of SPEC §4.3 with the
//! same stderr as OpenSSH.
//!
//! A client that is not installed fails its tests under CI (`CI` set) and is
//! skipped with a message locally; `.ci/run` installs all three.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[path = "../interop/clients.rs"]
mod clients;
use crate::common;
#[path = "../interop/process.rs"]
mod process;

use common::*;

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::Duration;

use clients::{Dropbear, KeyKind, Libssh, Paramiko, Plink, Tool, setup, signed_pubkey_algorithms};
use process::{Proc, Stdin};

const MIB: usize = 1024 * 1024;

/// The size of each byte-exact transfer.
const TRANSFER: usize = 20 * MIB;

/// Bound on one 20 MiB transfer. paramiko and plink pick AES-CTR with
/// HMAC-SHA2, which the unoptimised test build of the server decrypts at a
/// few MB/s (about 7 s of server CPU for 20 MiB alone); the bound leaves room
/// for a shared 2-core machine running other tests at the same time.
const TRANSFER_WAIT: Duration = Duration::from_secs(240);

/// The exec words whose exit statuses SPEC §4.3 fixes.
const PUB_TIMEOUT: &[&str] = &["pub", "-t", "300ms", "nobody-listens"];
const UNKNOWN: &[&str] = &["frobnicate"];

/// Full name of a private topic of `key`'s anonymous user.
fn full(key: &Key, name: &str) -> String {
    format!("{}/{name}", key.anonymous_name())
}

/// Runs `args` with client `T` to completion, stdin empty, bounded.
fn run<T: Tool>(tool: &T, args: &[&str]) -> Out {
    let what = format!("{} {}", T::NAME, args.join(" "));
    let mut out = Proc::spawn(tool.command(args), what, Stdin::Feed(Arc::default())).wait(WAIT);
    out.stderr = T::server_stderr(&out.stderr);
    out
}

// ------------------------------------------------------------ assertions

/// `got` is `want` byte for byte; on a mismatch, says sizes, sha256s and
/// where the first difference is.
fn assert_bytes(got: &[u8], want: &[u8], ctx: &str) {
    if got == want {
        return;
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    panic!(
        "{ctx}: {} bytes (sha256 {}), want {} bytes (sha256 {}); first difference at {}",
        got.len(),
        sha256(got),
        want.len(),
        sha256(want),
        first.map_or_else(
            || format!(
                "byte {} (one is a prefix of the other)",
                got.len().min(want.len())
            ),
            |i| format!("byte {i}")
        )
    );
}

fn assert_status(out: &Out, code: i32, ctx: &str) {
    assert_eq!(
        out.code(),
        code,
        "{ctx}: exit status; stderr: {:?}; stdout: {:?}",
        out.stderr,
        String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(2000)])
    );
}

/// A pub's status lines (SPEC §4.2) when it did not have to wait.
fn pub_sent(server: &TestServer, name: &str) -> String {
    format!(
        "subscribe to this channel:\n  ssh -p {} testhost sub {name}\nsending msg ...\nmsg sent!\n",
        server.addr.port()
    )
}

// ------------------------------------------------------------ behaviours

/// `whoami` logs in with a `kind` key and prints the key's identity.
fn whoami<T: Tool>(kind: KeyKind) {
    let Some((_server, key, tool)) = setup::<T>(kind) else {
        return;
    };
    let out = run(&tool, &["whoami"]);
    let ctx = format!("{} whoami with a {kind:?} key", T::NAME);
    assert_status(&out, 0, &ctx);
    assert_eq!(
        out.stdout_str(),
        format!(
            "user: {}\nfingerprint: {}\nadmin: no\n",
            key.anonymous_name(),
            key.fingerprint
        ),
        "{ctx}: stdout"
    );
    assert_eq!(out.stderr, "", "{ctx}: stderr");
}

/// `T` pubs 20 MiB to an OpenSSH sub that joined first.
fn pub_to_openssh_sub<T: Tool>(seed: u64) {
    let Some((server, key, tool)) = setup::<T>(KeyKind::Ed25519) else {
        return;
    };
    let data = Arc::new(random_bytes(TRANSFER, seed));
    let sub = Proc::spawn(
        server.ssh(&key, &["sub", "bulk"]),
        "OpenSSH sub bulk".to_string(),
        Stdin::Open,
    );
    server.wait_receivers(&full(&key, "bulk"), 1);
    let publ = Proc::spawn(
        tool.command(&["pub", "bulk"]),
        format!("{} pub bulk", T::NAME),
        Stdin::Feed(Arc::clone(&data)),
    );

    let mut p = publ.wait(TRANSFER_WAIT);
    p.stderr = T::server_stderr(&p.stderr);
    let s = sub.wait(TRANSFER_WAIT);
    assert_status(&p, 0, &format!("{} pub", T::NAME));
    assert_eq!(
        p.stderr,
        pub_sent(&server, "bulk"),
        "{} pub stderr",
        T::NAME
    );
    assert!(
        p.stdout.is_empty(),
        "{} pub stdout: {:?}",
        T::NAME,
        p.stdout
    );
    assert_status(&s, 0, "OpenSSH sub");
    assert_eq!(s.stderr, "", "OpenSSH sub stderr");
    assert_bytes(
        &s.stdout,
        &data,
        &format!("OpenSSH sub of a {} pub", T::NAME),
    );
}

/// `T` subs first; OpenSSH pubs 20 MiB to it.
fn sub_from_openssh_pub<T: Tool>(seed: u64) {
    let Some((server, key, tool)) = setup::<T>(KeyKind::Ed25519) else {
        return;
    };
    let data = Arc::new(random_bytes(TRANSFER, seed));
    let sub = Proc::spawn(
        tool.command(&["sub", "bulk"]),
        format!("{} sub bulk", T::NAME),
        Stdin::Open,
    );
    server.wait_receivers(&full(&key, "bulk"), 1);
    let publ = Proc::spawn(
        server.ssh(&key, &["pub", "bulk"]),
        "OpenSSH pub bulk".to_string(),
        Stdin::Feed(Arc::clone(&data)),
    );

    let p = publ.wait(TRANSFER_WAIT);
    let mut s = sub.wait(TRANSFER_WAIT);
    s.stderr = T::server_stderr(&s.stderr);
    assert_status(&p, 0, "OpenSSH pub");
    assert_eq!(p.stderr, pub_sent(&server, "bulk"), "OpenSSH pub stderr");
    assert_status(&s, 0, &format!("{} sub", T::NAME));
    assert_eq!(s.stderr, "", "{} sub stderr", T::NAME);
    assert_bytes(
        &s.stdout,
        &data,
        &format!("{} sub of an OpenSSH pub", T::NAME),
    );
}

/// `args` ends with exit status `code` and a stderr that has the line
/// `line`, and `T` sees the same stderr as OpenSSH.
fn exit_status<T: Tool>(args: &[&str], code: i32, line: &str) {
    let Some((server, key, tool)) = setup::<T>(KeyKind::Ed25519) else {
        return;
    };
    let ctx = format!("{} {}", T::NAME, args.join(" "));
    let out = run(&tool, args);
    assert_status(&out, code, &ctx);
    assert!(
        out.stdout.is_empty(),
        "{ctx}: stdout {:?}",
        out.stdout_str()
    );
    assert!(
        out.stderr.lines().any(|l| l == line),
        "{ctx}: stderr should have the line {line:?}: {:?}",
        out.stderr
    );
    let openssh = server.run(&key, args, b"");
    assert_status(&openssh, code, &format!("OpenSSH {}", args.join(" ")));
    assert_eq!(
        out.stderr, openssh.stderr,
        "{ctx}: stderr differs from OpenSSH's"
    );
}

fn pub_timeout_is_exit_1<T: Tool>() {
    exit_status::<T>(PUB_TIMEOUT, 1, "timeout reached, exiting");
}

fn unknown_command_is_exit_2<T: Tool>() {
    exit_status::<T>(UNKNOWN, 2, "unknown command: frobnicate");
}

/// plink signs with an RSA algorithm the server's `server-sig-algs` names
/// and falls back to SHA-1 `ssh-rsa` when it names none; SPEC §3 refuses
/// SHA-1, so a login must have been signed with rsa-sha2-256 or -512.
fn plink_rsa_login_signs_with_sha2() {
    let Some((server, key, tool)) = setup::<Plink>(KeyKind::Rsa3072) else {
        return;
    };
    let log = server.dir.path().join("plink-rsa.sshlog");
    let mut out = Proc::spawn(
        tool.command_with(&[OsStr::new("-sshlog"), log.as_os_str()], &["whoami"]),
        "plink -sshlog whoami".to_string(),
        Stdin::Feed(Arc::default()),
    )
    .wait(WAIT);
    out.stderr = Plink::server_stderr(&out.stderr);
    let algorithms = signed_pubkey_algorithms(&std::fs::read_to_string(&log).expect("sshlog"));
    assert!(
        !(out.code() == 0 && algorithms.iter().any(|a| a == "ssh-rsa")),
        "the server accepted a SHA-1 ssh-rsa signature from plink (SPEC §3 refuses it); \
         signed requests: {algorithms:?}"
    );
    assert_status(&out, 0, "plink whoami with an RSA key");
    assert_eq!(
        out.stdout_str().lines().nth(1),
        Some(format!("fingerprint: {}", key.fingerprint).as_str())
    );
    assert!(
        !algorithms.is_empty() && algorithms.iter().all(|a| a.starts_with("rsa-sha2-")),
        "plink signed with {algorithms:?}"
    );
}

// ----------------------------------------------------------------- tests

/// One test per (client, behaviour), so a failure names both.
macro_rules! interop_tests {
    ($client:ident, $tool:ty, $seed:expr $(, $extra:item)*) => {
        mod $client {
            use super::*;
            $($extra)*

            #[test]
            fn whoami_ed25519_exit_0() {
                whoami::<$tool>(KeyKind::Ed25519);
            }

            #[test]
            fn whoami_ecdsa_p256() {
                whoami::<$tool>(KeyKind::EcdsaP256);
            }

            #[test]
            fn whoami_rsa_3072() {
                whoami::<$tool>(KeyKind::Rsa3072);
            }

            #[test]
            fn pub_20_mib_to_openssh_sub_byte_exact() {
                pub_to_openssh_sub::<$tool>($seed);
            }

            #[test]
            fn sub_20_mib_from_openssh_pub_byte_exact() {
                sub_from_openssh_pub::<$tool>($seed + 1);
            }

            #[test]
            fn pub_timeout_exit_1() {
                pub_timeout_is_exit_1::<$tool>();
            }

            #[test]
            fn unknown_command_exit_2() {
                unknown_command_is_exit_2::<$tool>();
            }
        }
    };
}

interop_tests!(paramiko, Paramiko, 0x1e7_0100);
interop_tests!(dbclient, Dropbear, 0x1e7_0200);
interop_tests!(
    plink,
    Plink,
    0x1e7_0300,
    #[test]
    fn rsa_signature_is_sha2_not_sha1() {
        plink_rsa_login_signs_with_sha2();
    }
);

/// libssh logs in with every key type (SPEC §3); it runs no transfers here.
mod libssh {
    use super::*;

    #[test]
    fn whoami_ed25519() {
        whoami::<Libssh>(KeyKind::Ed25519);
    }

    #[test]
    fn whoami_ecdsa_p256() {
        whoami::<Libssh>(KeyKind::EcdsaP256);
    }

    #[test]
    fn whoami_rsa_3072() {
        whoami::<Libssh>(KeyKind::Rsa3072);
    }
}
