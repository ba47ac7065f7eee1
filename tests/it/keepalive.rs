//! Keepalive (SPEC §9, §5.4): an idle `sub -k` stays connected as long as
//! its client answers probes, and a client that stops answering is dropped
//! within the keepalive window, releasing the sender it held. Run with a
//! short interval so the test takes seconds, not minutes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::common;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn idle_keepalive_sub_outlives_many_probe_rounds() {
    let server = fast_keepalive_server();
    let key = server.key("idle");
    let topic = format!("{}/idle", key.anonymous_name());
    let mut sub = server.spawn(&key, &["sub", "-k", "idle"]);
    server.wait_receivers(&topic, 1);
    // Ten keepalive windows (interval x (max + 1)) with no data at all. This
    // is the condition under test, not a wait for one: the sub must still
    // be there afterwards.
    let window = Duration::from_millis(300) * 3;
    let until = Instant::now() + window * 10;
    while Instant::now() < until {
        assert!(sub.try_wait().unwrap().is_none(), "idle sub -k was dropped");
        assert_eq!(server.counts(&topic).map(|c| c.receivers), Some(1));
        std::thread::sleep(Duration::from_millis(100));
    }
    let lines = lines_of(&mut sub);
    let p = server.run(&key, &["pub", "-c", "idle"], b"still here\n");
    p.expect_code(0);
    // The pub's success means the server handed the line to the sub's
    // channel; the ssh client still has to print it (CI once killed it
    // first), so wait for the line before ending the sub.
    wait_until("the sub printed the line", || {
        !lines.lock().unwrap().is_empty()
    });
    assert!(sub.try_wait().unwrap().is_none(), "sub -k ended");
    sub.kill().unwrap();
    let _ = sub.wait();
    assert_eq!(*lines.lock().unwrap(), ["still here"]);
}

#[test]
fn frozen_client_is_dropped_and_its_pub_goes_back_to_waiting() {
    let server = fast_keepalive_server();
    let key = server.key("frozen");
    let topic = format!("{}/frozen", key.anonymous_name());
    let mut sub = server.spawn(&key, &["sub", "frozen"]);
    server.wait_receivers(&topic, 1);
    let stop = std::process::Command::new("kill")
        .args(["-STOP", &sub.id().to_string()])
        .status()
        .unwrap();
    assert!(stop.success());
    // A pub that starts streaming into the frozen receiver.
    let mut publ = server.spawn(&key, &["pub", "-t", "60s", "frozen"]);
    let mut stdin = publ.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let chunk = vec![b'x'; 64 * 1024];
        // Ends with an error once the pub is killed below.
        while stdin.write_all(&chunk).is_ok() {}
    });
    // The frozen client stops answering probes: it must be removed, and the
    // pub must go back to waiting for a receiver.
    server.wait_waiting_pubs(&topic, 1);
    server.wait_counts(&topic, "frozen sub removed", |c| c.receivers == 0);
    assert!(publ.try_wait().unwrap().is_none(), "pub must still wait");
    publ.kill().unwrap();
    let _ = publ.wait();
    let _ = writer.join();
    sub.kill().unwrap();
    let _ = sub.wait();
}
