//! Topic names: `validate`, `validate_pattern`, `Resolver::resolve`,
//! `pattern_matches`, `parse_access`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sshpipe::identity::{is_anonymous_name, valid_user_name};
use sshpipe::topic::{
    self, MAX_FULL_LEN, MAX_TOPIC_LEN, Namespace, PUBLIC, Resolver, TopicRef, parse_access,
};

/// Users of an imaginary users file.
const USERS: &[&str] = &["alice", "bob", "carol-2"];

fn check_ref(t: &TopicRef, typed: &str, allow_pattern: bool) {
    let ns = t.namespace.as_str();
    assert!(
        t.full.starts_with(ns) && t.full[ns.len()..].starts_with('/'),
        "{t:?} from {typed:?}"
    );
    assert_eq!(t.full, format!("{ns}/{}", t.local), "{typed:?}");
    assert!(t.full.len() <= MAX_FULL_LEN, "{typed:?}");
    // The local part is itself a valid name (pattern if allowed).
    if allow_pattern {
        assert!(
            topic::validate_pattern(&t.local).is_ok(),
            "{t:?} from {typed:?}"
        );
    } else {
        assert!(topic::validate(&t.local).is_ok(), "{t:?} from {typed:?}");
        assert!(!t.is_pattern());
    }
    match &t.namespace {
        Namespace::Public => assert!(t.is_public()),
        Namespace::User(u) => assert!(u != PUBLIC && !topic::is_pattern(u), "{t:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let input = String::from_utf8_lossy(rest);
    let s: &str = &input;

    // validate ⊂ validate_pattern; both bound the length.
    let plain = topic::validate(s);
    let pattern = topic::validate_pattern(s);
    if plain.is_ok() {
        assert!(pattern.is_ok(), "{s:?}");
        assert!(!topic::is_pattern(s));
    }
    if pattern.is_ok() {
        assert!(!s.is_empty() && s.len() <= MAX_TOPIC_LEN);
        assert!(
            s.split('/')
                .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        );
    }
    for e in [plain.err(), pattern.err()].into_iter().flatten() {
        let msg = e.to_string();
        assert!(!msg.contains(['\n', '\r']), "multi-line error {msg:?}");
    }

    // Resolve as one of a few users, with the flag bits choosing the mode.
    let user = match flags & 3 {
        0 => "alice",
        1 => "fp-0123456789abcdef",
        2 => "bob",
        _ => "@http",
    };
    let is_user = |name: &str| USERS.contains(&name);
    let resolver = Resolver {
        user,
        admin: flags & 4 != 0,
        is_user: &is_user,
    };
    let public = flags & 8 != 0;
    let allow_pattern = flags & 16 != 0;
    match resolver.resolve(s, public, allow_pattern) {
        Ok(t) => {
            check_ref(&t, s, allow_pattern);
            if public {
                assert!(t.is_public(), "-p gave {t:?} for {s:?}");
            }
            if !resolver.admin {
                assert!(!s.starts_with('/'));
            }
            // Resolving the full name as admin lands on the same topic (when the
            // namespace is one an admin can name and the full name fits a name).
            let nameable = match &t.namespace {
                Namespace::Public => true,
                Namespace::User(u) => valid_user_name(u) || is_anonymous_name(u),
            };
            if nameable && t.full.len() <= MAX_TOPIC_LEN {
                let admin = Resolver {
                    admin: true,
                    ..resolver
                };
                let again = admin.resolve(&format!("/{}", t.full), false, allow_pattern);
                assert_eq!(again.as_ref(), Ok(&t), "{s:?}");
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains(['\n', '\r']), "multi-line error {msg:?}");
        }
    }

    // Glob: two halves split at the first NUL (or the middle).
    let (p, n) = s.split_once('\0').unwrap_or_else(|| {
        let mid = (0..=s.len() / 2)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        s.split_at(mid)
    });
    if topic::pattern_matches(p, n) {
        // Never across '/': same segment count; a literal pattern matches only itself.
        assert_eq!(
            p.matches('/').count(),
            n.matches('/').count(),
            "{p:?} ~ {n:?}"
        );
        if !topic::is_pattern(p) {
            assert_eq!(p, n);
        }
    }
    if !topic::is_pattern(n) {
        assert!(topic::pattern_matches(n, n), "{n:?} does not match itself");
    }
    assert!(
        topic::pattern_matches("*", n) == (!n.contains('/')),
        "* vs {n:?}"
    );

    // Access lists: as -a splits them.
    let entries: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect();
    match parse_access(&entries) {
        Ok(list) => {
            // Parsing an accepted list again gives the same list.
            let again = list.0.clone();
            assert_eq!(parse_access(&again).as_ref(), Ok(&list), "{s:?}");
        }
        Err(msg) => assert!(!msg.contains(['\n', '\r']), "multi-line error {msg:?}"),
    }
});
