//! HTTP requests: `Params::parse` of the query string, and the topic an
//! HTTP path resolves to. Input: `PATH?QUERY` (the path already
//! percent-decoded, as axum's `Path` extractor hands it over).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sshpipe::http::{Params, resolve_path};
use sshpipe::topic::{MAX_FULL_LEN, Namespace};

/// Users of an imaginary users file.
const USERS: &[&str] = &["alice", "bob"];

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let (path, query) = match input.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (&*input, None),
    };

    match Params::parse(query) {
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
