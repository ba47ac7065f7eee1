//! `sub -l` (SPEC §5.4): a lossy receiver never slows the senders; it skips
//! what it cannot take and says how much at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::common;
use std::io::{Read, Write};
use std::thread;

use common::*;

#[test]
fn a_stalled_lossy_sub_never_slows_the_pub_and_reports_what_it_skipped() {
    const TOTAL: usize = 32 * 1024 * 1024;
    let server = TestServer::start();
    let key = server.key("k");
    let full = format!("{}/feed", key.anonymous_name());
    // The lossy sub's stdout is not read until the pub is done: its client
    // stops reading, its SSH window fills, and its queue with it.
    let lossy = server.spawn(&key, &["sub", "-l", "feed"]);
    let mut fast = server.spawn(&key, &["sub", "feed"]);
    let mut fast_out = fast.stdout.take().unwrap();
    let fast_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        fast_out.read_to_end(&mut buf).unwrap();
        buf
    });
    server.wait_receivers(&full, 2);

    let data = random_bytes(TOTAL, 7);
    let mut publ = server.spawn(&key, &["pub", "-c", "feed"]);
    let mut stdin = publ.stdin.take().unwrap();
    let input = data.clone();
    let writer = thread::spawn(move || stdin.write_all(&input).unwrap());
    // Bounded by the harness: a pub paced by the stalled lossy sub would
    // never finish.
    let status = wait_child(&mut publ, "pub next to a stalled lossy sub");
    writer.join().unwrap();
    assert_eq!(status.code(), Some(0));

    // The fast sub got everything.
    assert_eq!(wait_child(&mut fast, "fast sub").code(), Some(0));
    assert_eq!(sha256(&fast_reader.join().unwrap()), sha256(&data));

    // Now read the lossy one: what it got plus what it skipped is the whole.
    let out = collect(lossy, "lossy sub");
    out.expect_code(0);
    let skipped: usize = out
        .stderr
        .trim()
        .strip_prefix("skipped ")
        .and_then(|s| s.strip_suffix(" bytes"))
        .unwrap_or_else(|| panic!("one 'skipped N bytes' line: {:?}", out.stderr))
        .parse()
        .unwrap();
    assert!(
        skipped > 0,
        "a stalled lossy sub must have skipped something"
    );
    assert_eq!(
        out.stdout.len() + skipped,
        TOTAL,
        "received + skipped = sent"
    );
}
