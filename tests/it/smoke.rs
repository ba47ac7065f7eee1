//! The README's first promise: `sub hello` in one terminal, `echo hi | pub
//! hello` in another, with the real ssh client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::common;
use common::*;

#[test]
fn pub_reaches_sub_and_both_exit_zero() {
    let server = TestServer::start();
    let key = server.key("alice");
    let user = key.anonymous_name();
    let topic = format!("{user}/hello");
    let sub = server.spawn(&key, &["sub", "hello"]);
    server.wait_receivers(&topic, 1);
    let p = server.run(&key, &["pub", "hello"], b"hi\n");
    p.expect_code(0);
    assert!(p.stderr.contains("msg sent!"), "stderr: {}", p.stderr);
    let s = collect(sub, "sub");
    s.expect_code(0);
    assert_eq!(s.stdout, b"hi\n");
    assert_eq!(s.stderr, "");
}
