//! HTTP requests: `Params::parse` of the query string, and the topic an
//! HTTP path resolves to. Input: `PATH?QUERY` (the path already
//! percent-decoded, as axum's `Path` extractor hands it over).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sshpipe::http::{Params, resolve_path};
use sshpipe::topic::{MAX_FULL_LEN, Namespace};

/// Strict percent-decoding (RFC 3986: `%` and exactly two hex digits; `+` is
/// itself), the reference `Params` must agree with.
fn reference_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied(), b.get(i + 2).copied()) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h)? * 16 + hex(l)?) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Users of an imaginary users file.
const USERS: &[&str] = &["alice", "bob"];

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let (path, query) = match input.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (&*input, None),
    };

    let parsed = Params::parse(query);

    // One `key=value` pair: Params decodes it exactly as the reference does.
    if let Some(q) = query.filter(|q| !q.contains('&')) {
        let (key, value) = q.split_once('=').unwrap_or((q, ""));
        let want = reference_decode(key).zip(reference_decode(value));
        match (&parsed, want) {
            (Ok(params), Some((k, v))) if !k.is_empty() || !q.is_empty() => {
                assert_eq!(params.get(&k), Some(v.as_str()), "{q:?}");
            }
            (Err(_), None) | (Ok(_), Some(_)) => {}
            (Ok(_), None) => panic!("accepted non-UTF-8 {q:?}"),
            (Err(e), Some(_)) => panic!("rejected {q:?}: {e}"),
        }
    }

    match parsed {
        Ok(params) => {
            // Every accessor answers without panicking; errors are one line.
            let errors = [
                params.flag("persist").err(),
                params.flag("block").err(),
                params.timeout().err(),
                params.access().err(),
            ];
            for e in errors.into_iter().flatten() {
                let msg = e.to_string();
                assert!(!msg.contains(['\n', '\r']), "multi-line error {msg:?}");
            }
            if let Ok(Some(list)) = params.access() {
                for e in &list.0 {
                    assert!(!e.is_empty() && !e.contains(',') && e.trim() == e, "{e:?}");
                }
            }
            let _ = params.get("mime");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains(['\n', '\r']), "multi-line error {msg:?}");
        }
    }

    // HTTP clients only ever reach the public namespace.
    let is_user = |name: &str| USERS.contains(&name);
    match resolve_path(&is_user, path) {
        Ok(t) => {
            assert_eq!(t.namespace, Namespace::Public, "{path:?} -> {t:?}");
            assert!(t.full.starts_with("public/"), "{path:?} -> {t:?}");
            assert_eq!(t.full, format!("public/{}", t.local));
            assert!(t.full.len() <= MAX_FULL_LEN);
            assert!(!t.is_pattern());
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains(['\n', '\r']), "multi-line error {msg:?}");
        }
    }
});
