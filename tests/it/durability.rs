//! Durability (SPEC §10): queued messages and access lists survive a
//! restart and a `kill -9` of the real binary; what was never acknowledged
//! never appears; a corrupt store file stops the start with a clear error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::common;
use common::*;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

fn in_process(data_dir: &Path) -> TestServer {
    TestServer::from_options(options_for(data_dir), tempfile::tempdir().unwrap())
}

#[test]
fn a_restart_keeps_queued_messages_and_access_lists() {
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let alice = Key::new(keys.path(), "alice");
    let bob = Key::new(keys.path(), "bob");
    let carol = Key::new(keys.path(), "carol");
    let shared = format!("{}/files", alice.anonymous_name());
    let body = random_bytes(700_000, 3);

    let server = in_process(data.path());
    let out = server.run(
        &alice,
        &["pub", "-q", "-a", &bob.fingerprint, "files"],
        &body,
    );
    out.expect_code(0);
    server
        .run(&alice, &["pub", "-q", "files"], b"two\n")
        .expect_code(0);
    server.stop();

    let server = in_process(data.path());
    assert_eq!(
        server.app.broker.queued(&shared),
        (2, body.len() as u64 + 4)
    );
    let denied = server.run(&carol, &["sub", &shared], b"");
    denied.expect_code(1);
    assert!(denied.stderr.contains("access denied"), "{}", denied.stderr);
    let first = server.run(&bob, &["sub", &shared], b"");
    first.expect_code(0);
    assert_eq!(sha256(&first.stdout), sha256(&body));
    server.stop();

    // The list is still there after a second restart, with the queue one
    // shorter.
    let server = in_process(data.path());
    let listing = server.run(&alice, &["ls"], b"").stdout_str();
    assert!(
        listing.contains(&format!("  access: {}\n", bob.fingerprint)),
        "{listing}"
    );
    assert!(
        listing.contains("  queued: 1 messages, 4 bytes\n"),
        "{listing}"
    );
    let second = server.run(&bob, &["sub", &shared], b"");
    assert_eq!(second.stdout, b"two\n");
}

#[test]
fn kill_9_keeps_what_was_acknowledged_and_nothing_else() {
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key = Key::new(keys.path(), "k");
    let a = random_bytes(1_000_000, 5);

    let server = Binary::start(data.path());
    server.run(&key, &["pub", "-q", "files"], &a).expect_code(0);
    server
        .run(&key, &["pub", "-q", "files"], b"b\n")
        .expect_code(0);
    // A third pub is cut off mid-store: it was never acknowledged.
    let mut cut = server
        .ssh(&key, &["pub", "-q", "-c", "files"])
        .spawn()
        .unwrap();
    let mut stdin = cut.stdin.take().unwrap();
    stdin.write_all(&random_bytes(3_000_000, 6)).unwrap();
    server.kill9();
    drop(stdin);
    let cut = collect(cut, "the cut-off pub");
    assert_ne!(cut.code(), 0, "a pub cut off mid-store is not acknowledged");

    let server = Binary::start(data.path());
    let listing = server.run(&key, &["ls"], b"").stdout_str();
    let want = format!("  queued: 2 messages, {} bytes\n", a.len() + 2);
    assert!(listing.contains(&want), "{listing}");
    let first = server.run(&key, &["sub", "files"], b"");
    first.expect_code(0);
    assert_eq!(sha256(&first.stdout), sha256(&a));
    let second = server.run(&key, &["sub", "files"], b"");
    assert_eq!(second.stdout, b"b\n");
    assert_eq!(server.run(&key, &["ls"], b"").stdout_str(), "no topics\n");
    server.kill9();
}

#[test]
fn a_corrupt_store_is_a_start_up_error_naming_the_file() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("sshpipe.redb");
    std::fs::write(&file, random_bytes(64 * 1024, 9)).unwrap();
    let mut cmd = binary(data.path());
    let out = cmd.stderr(Stdio::piped()).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("sshpipe: "), "{stderr}");
    assert!(last.contains(&file.display().to_string()), "{stderr}");
    // Never a silent reset: the file is left as it was.
    assert_eq!(std::fs::read(&file).unwrap(), random_bytes(64 * 1024, 9));
}

#[test]
fn messages_older_than_the_retention_are_removed_in_the_background() {
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key = Key::new(keys.path(), "k");
    let topic = format!("{}/old", key.anonymous_name());
    let server = in_process(data.path());
    server
        .run(&key, &["pub", "-q", "old"], b"stale\n")
        .expect_code(0);
    assert_eq!(server.app.broker.queued(&topic), (1, 6));
    server.stop();

    // Restarted with a 1 ms retention: the start-up sweep removes it.
    let mut opts = options_for(data.path());
    opts.broker.queue.retention = std::time::Duration::from_millis(1);
    let server = TestServer::from_options(opts, tempfile::tempdir().unwrap());
    wait_until("the expired message removed", || {
        server.app.broker.queued(&topic) == (0, 0)
    });
    server.stop();

    // Removed from the store too, not just from memory.
    let server = in_process(data.path());
    assert_eq!(server.app.broker.queued(&topic), (0, 0));
    assert_eq!(server.run(&key, &["ls"], b"").stdout_str(), "no topics\n");
}
