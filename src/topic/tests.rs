#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use proptest::prelude::*;

const FP_A: &str = "fp-AAAAbbbbCCCC_-12";

fn users(name: &str) -> bool {
    matches!(name, "alice" | "bob" | "carol")
}

fn resolver(user: &str, admin: bool) -> Resolver<'_> {
    Resolver {
        user,
        admin,
        is_user: &users,
    }
}

#[test]
fn validate_table() {
    let long = "a".repeat(256);
    let too_long = "a".repeat(257);
    let long_multi = format!("{}/{}", "a".repeat(127), "b".repeat(128));
    // (name, ok)
    let cases: &[(&str, bool)] = &[
        ("logs", true),
        ("a/b/c", true),
        ("logs-api.v2", true),
        ("a.b", true),
        ("...", true),
        ("日本語/ログ", true),
        ("émoji-🚀", true),
        ("SHA256:x+y=", true),
        (&long, true),
        (&long_multi, true),
        (&too_long, false),
        ("", false),
        ("/", false),
        ("/a", false),
        ("a/", false),
        ("a//b", false),
        (".", false),
        ("..", false),
        ("a/./b", false),
        ("a/../b", false),
        ("../etc", false),
        ("a/..", false),
        ("a b", false),
        (" a", false),
        ("a\tb", false),
        ("a\nb", false),
        ("a\rb", false),
        ("a\0b", false),
        ("a\u{7f}b", false),
        ("a\u{1b}[31m", false),
        ("a\u{85}b", false),
        ("a\u{a0}b", false),
        ("a\u{3000}b", false),
        ("a\u{200b}b", false),
        ("a\u{202e}b", false),
        ("a\u{feff}b", false),
        ("a*", false),
        ("a?", false),
    ];
    for (name, ok) in cases {
        assert_eq!(validate(name).is_ok(), *ok, "validate({name:?})");
    }
    // 256 bytes of multi-byte chars: 85 * 3 = 255 ok, 86 * 3 = 258 too long
    assert!(validate(&"語".repeat(85)).is_ok());
    assert!(matches!(
        validate(&"語".repeat(86)),
        Err(TopicError::TooLong { len: 258, .. })
    ));
}

#[test]
fn validate_pattern_table() {
    for ok in ["a*", "logs-*", "?", "*", "a/*/c", "a?b*", "**"] {
        assert!(validate_pattern(ok).is_ok(), "{ok:?}");
        assert!(validate(ok).is_err(), "{ok:?}");
        assert!(is_pattern(ok));
    }
    for bad in ["", "a//*", "*/", "./*", "* x", "a\n*"] {
        assert!(validate_pattern(bad).is_err(), "{bad:?}");
    }
    assert!(!is_pattern("logs"));
}

#[test]
fn error_messages() {
    let cases: &[(&str, &str)] = &[
        ("a//b", "invalid topic name: \"a//b\": empty segment"),
        ("", "invalid topic name: \"\": a name must not be empty"),
        (
            "a/..",
            "invalid topic name: \"a/..\": \"..\" segment is not allowed",
        ),
        (
            "a b",
            "invalid topic name: \"a b\": ' ' is not allowed (only printable, non-space characters)",
        ),
        (
            "a\nb",
            "invalid topic name: \"a\\nb\": '\\n' is not allowed (only printable, non-space characters)",
        ),
        (
            "x*",
            "invalid topic name: \"x*\": '*' is only allowed in sub patterns",
        ),
    ];
    for (name, msg) in cases {
        assert_eq!(validate(name).unwrap_err().to_string(), *msg);
    }
    let e = validate(&"a".repeat(300)).unwrap_err().to_string();
    assert!(e.starts_with("invalid topic name: \"aaaa"), "{e}");
    assert!(e.ends_with("...\": 300 bytes is too long (max 256)"), "{e}");
    assert!(e.len() < 140, "{e}");

    let e = resolver("bob", false)
        .resolve("/x", false, false)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid topic name: \"/x\": a leading '/' is for admins"
    );
}

/// Expected outcome of a resolve: Ok(full, namespace, local) or Err.
enum Exp {
    Ok(&'static str, Option<&'static str>, &'static str),
    Err,
}

#[test]
fn resolve_table() {
    use Exp::*;
    let fp_logs = format!("{FP_A}/logs");
    let fp_full = format!("{FP_A}/logs");
    let admin_fp = format!("/{FP_A}/logs");
    let _ = (&fp_logs, &fp_full, &admin_fp);
    // (user, admin, typed, public, allow_pattern, expected)
    let cases: Vec<(&str, bool, &str, bool, bool, Exp)> = vec![
        // own namespace
        (
            "alice",
            false,
            "logs",
            false,
            false,
            Ok("alice/logs", Some("alice"), "logs"),
        ),
        (
            "alice",
            false,
            "alice/logs",
            false,
            false,
            Ok("alice/logs", Some("alice"), "logs"),
        ),
        (
            "alice",
            false,
            "alice",
            false,
            false,
            Ok("alice/alice", Some("alice"), "alice"),
        ),
        (
            "alice",
            false,
            "alice/alice/x",
            false,
            false,
            Ok("alice/alice/x", Some("alice"), "alice/x"),
        ),
        // another user's namespace
        (
            "bob",
            false,
            "alice/logs",
            false,
            false,
            Ok("alice/logs", Some("alice"), "logs"),
        ),
        (
            "bob",
            false,
            "alice/a/b",
            false,
            false,
            Ok("alice/a/b", Some("alice"), "a/b"),
        ),
        (
            "bob",
            false,
            "alice",
            false,
            false,
            Ok("bob/alice", Some("bob"), "alice"),
        ),
        // not a user: inside your own namespace
        (
            "bob",
            false,
            "svc/logs",
            false,
            false,
            Ok("bob/svc/logs", Some("bob"), "svc/logs"),
        ),
        (
            "bob",
            false,
            "Alice/logs",
            false,
            false,
            Ok("bob/Alice/logs", Some("bob"), "Alice/logs"),
        ),
        (
            "bob",
            false,
            "dave/logs",
            false,
            false,
            Ok("bob/dave/logs", Some("bob"), "dave/logs"),
        ),
        // anonymous names
        (
            "bob",
            false,
            "fp-AAAAbbbbCCCC_-12/logs",
            false,
            false,
            Ok("fp-AAAAbbbbCCCC_-12/logs", Some(FP_A), "logs"),
        ),
        (
            "bob",
            false,
            "fp-short/logs",
            false,
            false,
            Ok("bob/fp-short/logs", Some("bob"), "fp-short/logs"),
        ),
        (
            FP_A,
            false,
            "logs",
            false,
            false,
            Ok("fp-AAAAbbbbCCCC_-12/logs", Some(FP_A), "logs"),
        ),
        (
            FP_A,
            false,
            "alice/logs",
            false,
            false,
            Ok("alice/logs", Some("alice"), "logs"),
        ),
        // public
        (
            "bob",
            false,
            "logs",
            true,
            false,
            Ok("public/logs", None, "logs"),
        ),
        (
            "bob",
            false,
            "public/logs",
            true,
            false,
            Ok("public/logs", None, "logs"),
        ),
        (
            "bob",
            false,
            "public/logs",
            false,
            false,
            Ok("public/logs", None, "logs"),
        ),
        (
            "bob",
            false,
            "public/a/b",
            false,
            false,
            Ok("public/a/b", None, "a/b"),
        ),
        (
            "bob",
            false,
            "public",
            false,
            false,
            Ok("bob/public", Some("bob"), "public"),
        ),
        (
            "bob",
            false,
            "public",
            true,
            false,
            Ok("public/public", None, "public"),
        ),
        (
            "bob",
            false,
            "alice/logs",
            true,
            false,
            Ok("public/alice/logs", None, "alice/logs"),
        ),
        (
            "bob",
            false,
            "public/public/x",
            true,
            false,
            Ok("public/public/x", None, "public/x"),
        ),
        // admin full names
        (
            "root",
            true,
            "/alice/logs",
            false,
            false,
            Ok("alice/logs", Some("alice"), "logs"),
        ),
        (
            "root",
            true,
            "/dave/logs",
            false,
            false,
            Ok("dave/logs", Some("dave"), "logs"),
        ),
        (
            "root",
            true,
            "/public/logs",
            false,
            false,
            Ok("public/logs", None, "logs"),
        ),
        (
            "root",
            true,
            "/public/logs",
            true,
            false,
            Ok("public/logs", None, "logs"),
        ),
        (
            "root",
            true,
            "/fp-AAAAbbbbCCCC_-12/logs",
            false,
            false,
            Ok("fp-AAAAbbbbCCCC_-12/logs", Some(FP_A), "logs"),
        ),
        (
            "root",
            true,
            "/alice/logs-*",
            false,
            true,
            Ok("alice/logs-*", Some("alice"), "logs-*"),
        ),
        (
            "root",
            true,
            "logs",
            false,
            false,
            Ok("root/logs", Some("root"), "logs"),
        ),
        (
            "root",
            true,
            "alice/logs",
            false,
            false,
            Ok("alice/logs", Some("alice"), "logs"),
        ),
        ("root", true, "/alice", false, false, Err),
        ("root", true, "/alice/logs", true, false, Err),
        ("root", true, "/Alice/logs", false, false, Err),
        ("root", true, "/*/logs", false, true, Err),
        ("root", true, "//alice/logs", false, false, Err),
        ("root", true, "/alice/../x", false, false, Err),
        ("root", true, "/", false, false, Err),
        // non-admin leading '/'
        ("bob", false, "/alice/logs", false, false, Err),
        ("bob", false, "/bob/logs", false, false, Err),
        ("bob", false, "/public/logs", false, false, Err),
        ("bob", false, "/public/logs", true, false, Err),
        // invalid names
        ("bob", false, "", false, false, Err),
        ("bob", false, "a//b", false, false, Err),
        ("bob", false, "alice/", false, false, Err),
        ("bob", false, "alice/.", false, false, Err),
        ("bob", false, "alice/../bob/x", false, false, Err),
        ("bob", false, "./x", false, false, Err),
        ("bob", false, "a b", false, false, Err),
        ("bob", false, "a\u{1}", false, false, Err),
        ("bob", false, "public/", true, false, Err),
        // unicode
        (
            "bob",
            false,
            "ログ",
            false,
            false,
            Ok("bob/ログ", Some("bob"), "ログ"),
        ),
        (
            "bob",
            false,
            "alice/ログ",
            false,
            false,
            Ok("alice/ログ", Some("alice"), "ログ"),
        ),
        // patterns
        ("bob", false, "logs-*", false, false, Err),
        (
            "bob",
            false,
            "logs-*",
            false,
            true,
            Ok("bob/logs-*", Some("bob"), "logs-*"),
        ),
        (
            "bob",
            false,
            "alice/logs-?",
            false,
            true,
            Ok("alice/logs-?", Some("alice"), "logs-?"),
        ),
        (
            "bob",
            false,
            "*/logs",
            false,
            true,
            Ok("bob/*/logs", Some("bob"), "*/logs"),
        ),
        (
            "bob",
            false,
            "ali*/logs",
            false,
            true,
            Ok("bob/ali*/logs", Some("bob"), "ali*/logs"),
        ),
        (
            "bob",
            false,
            "fp-*/logs",
            false,
            true,
            Ok("bob/fp-*/logs", Some("bob"), "fp-*/logs"),
        ),
        ("bob", false, "*", true, true, Ok("public/*", None, "*")),
    ];
    for (user, admin, typed, public, pat, exp) in &cases {
        let got = resolver(user, *admin).resolve(typed, *public, *pat);
        let ctx = format!("user={user} admin={admin} typed={typed:?} -p={public} pattern={pat}");
        match (exp, got) {
            (Ok(full, ns, local), std::result::Result::Ok(t)) => {
                assert_eq!(t.full, *full, "{ctx}");
                assert_eq!(t.local, *local, "{ctx}");
                let want_ns = match ns {
                    Some(u) => Namespace::User(u.to_string()),
                    None => Namespace::Public,
                };
                assert_eq!(t.namespace, want_ns, "{ctx}");
                assert_eq!(
                    t.full,
                    format!("{}/{}", t.namespace.as_str(), t.local),
                    "{ctx}"
                );
            }
            (Err, std::result::Result::Err(e)) => {
                assert!(
                    e.to_string().starts_with("invalid topic name: "),
                    "{ctx}: {e}"
                );
            }
            (Ok(..), std::result::Result::Err(e)) => panic!("{ctx}: unexpected error {e}"),
            (Err, std::result::Result::Ok(t)) => panic!("{ctx}: expected error, got {t:?}"),
        }
    }
}

#[test]
fn resolve_lengths() {
    let r = resolver("alice", false);
    let t = r.resolve(&"x".repeat(256), false, false).unwrap();
    assert_eq!(t.full.len(), 256 + 6);
    assert!(r.resolve(&"x".repeat(257), false, false).is_err());
    assert!(r.resolve(&"x".repeat(257), true, false).is_err());
    // typed in full: the namespace prefix counts against the 256 bytes
    let typed = format!("bob/{}", "x".repeat(252));
    assert_eq!(r.resolve(&typed, false, false).unwrap().local.len(), 252);
    let typed = format!("bob/{}", "x".repeat(253));
    assert!(r.resolve(&typed, false, false).is_err());
    // a 32-byte user name on top of 256 bytes still fits MAX_FULL_LEN
    let long_user = "u".repeat(32);
    let r = resolver(&long_user, false);
    let t = r.resolve(&"x".repeat(256), false, false).unwrap();
    assert_eq!(t.full.len(), MAX_FULL_LEN);
}

#[test]
fn namespaces_of_resolved_names() {
    let r = resolver("alice", false);
    let own = r.resolve("logs", false, false).unwrap();
    let public = r.resolve("logs", true, false).unwrap();
    assert!(public.is_public());
    assert!(!own.is_public());
    assert_eq!(own.namespace.owner(), Some("alice"));
    assert_eq!(public.namespace.owner(), None);
}

#[test]
fn pattern_table() {
    let cases: &[(&str, &str, bool)] = &[
        ("logs-*", "logs-api", true),
        ("logs-*", "logs-db", true),
        ("logs-*", "logs-", true),
        ("logs-*", "logs", false),
        ("logs-*", "logs-a/b", false),
        ("logs-?", "logs-a", true),
        ("logs-?", "logs-ab", false),
        ("logs-?", "logs-", false),
        ("logs-?", "logs-語", true),
        ("a?c", "a/c", false),
        ("*", "abc", true),
        ("*", "", true),
        ("*", "a/b", false),
        ("*/*", "a/b", true),
        ("*/b", "a/b", true),
        ("a/*", "a/b/c", false),
        ("a/*/c", "a/b/c", true),
        ("a*b*c", "axxbyyc", true),
        ("a*b*c", "axxbyy", false),
        ("*a", "bbba", true),
        ("*a*a", "aa", true),
        ("*a*a", "a", false),
        ("**", "x", true),
        ("alice/logs-*", "alice/logs-api", true),
        ("alice/logs-*", "bob/logs-api", false),
        ("logs", "logs", true),
        ("logs", "log", false),
        ("logs", "Logs", false),
    ];
    for (p, n, ok) in cases {
        assert_eq!(pattern_matches(p, n), *ok, "{p:?} ~ {n:?}");
    }
}

#[test]
fn access_list_parsing() {
    let fp = format!("SHA256:{}", "aB3+/".repeat(8) + "xyz");
    assert_eq!(fp.len(), 7 + 43);
    let padded = format!("{fp}=");
    let entries: Vec<String> = vec![
        "bob".into(),
        fp.clone(),
        FP_A.into(),
        padded.clone(),
        "bob".into(),
    ];
    let acl = parse_access(&entries).unwrap();
    assert_eq!(acl.0, vec!["bob".to_string(), fp.clone(), FP_A.to_string()]);
    assert_eq!(parse_access(&[]).unwrap(), AccessList::default());

    let bad = [
        "Bob",
        "public",
        "fp-short",
        "bob,carol",
        "bob carol",
        "",
        "SHA256:short",
        "sha256:aB3+/aB3+/aB3+/aB3+/aB3+/aB3+/aB3+/aB3+/xyz",
        "MD5:aa:bb",
        "SHA256:aB3+/aB3+/aB3+/aB3+/aB3+/aB3+/aB3+/aB3+/xy!",
        "SHA256:aB3+/aB3+/aB3+/aB3+/aB3+/aB3+/aB3+/aB3+/xyz==",
    ];
    for b in bad {
        let e = parse_access(&[b.to_string()]).unwrap_err();
        assert_eq!(e, format!("invalid access list entry: {b:?}"));
    }
}

fn who<'a>(name: &'a str, fingerprint: &'a str, admin: bool) -> Who<'a> {
    Who {
        name,
        fingerprint,
        admin,
    }
}

#[test]
fn may_use_table() {
    let fp_carol = format!("SHA256:{}", "c".repeat(43));
    let fp_dave = format!("SHA256:{}", "d".repeat(43));
    let fp_eve = format!("SHA256:{}", "e".repeat(43));
    let r = resolver("alice", false);
    let private = r.resolve("logs", false, false).unwrap();
    let public = r.resolve("logs", true, false).unwrap();
    let acl = parse_access(&["bob".into(), fp_carol.clone()]).unwrap();
    let empty = AccessList::default();

    let alice = who("alice", "SHA256:alice", false);
    let bob = who("bob", "SHA256:bob", false);
    let carol = who("carol", &fp_carol, false); // listed by fingerprint
    let dave = who("dave", &fp_dave, false); // unlisted
    let anon = who(FP_A, &fp_eve, false); // unlisted anonymous
    let root = who("root", "SHA256:root", true);

    // (topic, acl, public_owner, who, may_use, may_set_access)
    #[allow(clippy::type_complexity)]
    let cases: Vec<(
        &TopicRef,
        Option<&AccessList>,
        Option<&str>,
        &Who,
        bool,
        bool,
    )> = vec![
        // private, no list
        (&private, None, None, &alice, true, true),
        (&private, None, None, &bob, false, false),
        (&private, None, None, &dave, false, false),
        (&private, None, None, &anon, false, false),
        (&private, None, None, &root, true, true),
        // private with list
        (&private, Some(&acl), None, &alice, true, true),
        (&private, Some(&acl), None, &bob, true, false),
        (&private, Some(&acl), None, &carol, true, false),
        (&private, Some(&acl), None, &dave, false, false),
        (&private, Some(&acl), None, &anon, false, false),
        (&private, Some(&acl), None, &root, true, true),
        // a public owner means nothing for a private topic
        (&private, Some(&acl), Some("dave"), &dave, false, false),
        (&private, Some(&empty), None, &alice, true, true),
        (&private, Some(&empty), None, &bob, false, false),
        // public, no list: open to all, anyone may set a list
        (&public, None, None, &alice, true, true),
        (&public, None, None, &dave, true, true),
        (&public, None, None, &anon, true, true),
        // public with a list set by dave
        (&public, Some(&acl), Some("dave"), &dave, true, true),
        (&public, Some(&acl), Some("dave"), &bob, true, false),
        (&public, Some(&acl), Some("dave"), &carol, true, false),
        (&public, Some(&acl), Some("dave"), &alice, false, false),
        (&public, Some(&acl), Some("dave"), &anon, false, false),
        (&public, Some(&acl), Some("dave"), &root, true, true),
        (&public, Some(&empty), Some("dave"), &alice, false, false),
    ];
    for (i, (topic, list, owner, w, use_ok, set_ok)) in cases.iter().enumerate() {
        assert_eq!(
            may_use(topic, *list, *owner, w),
            *use_ok,
            "case {i}: may_use {w:?}"
        );
        assert_eq!(
            may_set_access(topic, list.is_some(), *owner, w),
            *set_ok,
            "case {i}: may_set_access {w:?}"
        );
    }

    // an anonymous owner and an anonymous listed key
    let anon_topic = resolver(FP_A, false).resolve("x", false, false).unwrap();
    assert!(may_use(&anon_topic, None, None, &anon));
    assert!(!may_use(&anon_topic, None, None, &alice));
    let by_name = parse_access(&[FP_A.into()]).unwrap();
    assert!(may_use(&private, Some(&by_name), None, &anon));
    // empty identity strings never match anything
    let hostile = AccessList(vec![String::new()]);
    assert!(!may_use(
        &private,
        Some(&hostile),
        None,
        &who("", "", false)
    ));
}

fn arb_typed() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[/]?((alice|bob|carol|dave|public|fp-AAAAbbbbCCCC_-12|\\.|\\.\\.|[a-z*?]{0,4}|ログ| )/){0,3}[a-z*?]{0,5}",
    ]
}

fn arb_user() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("alice".to_string()),
        Just("bob".to_string()),
        Just("dave".to_string()),
        Just(FP_A.to_string()),
        "[a-z0-9][a-z0-9_-]{0,31}",
    ]
}

proptest! {
    #[test]
    fn resolve_never_panics(typed in any::<String>(), user in arb_user(), admin: bool, public: bool, pat: bool) {
        let _ = resolver(&user, admin).resolve(&typed, public, pat);
    }

    #[test]
    fn no_loophole(typed in arb_typed(), user in arb_user(), public: bool, pat: bool) {
        let r = resolver(&user, false);
        let Ok(t) = r.resolve(&typed, public, pat) else { return Ok(()) };
        prop_assert!(!typed.starts_with('/'), "non-admin resolved a leading '/'");
        prop_assert_eq!(&t.full, &format!("{}/{}", t.namespace.as_str(), t.local));
        prop_assert!(!is_pattern(t.namespace.as_str()));
        prop_assert!(t.full.len() <= MAX_FULL_LEN);
        if pat { prop_assert!(validate_pattern(&t.full).is_ok()); } else { prop_assert!(validate(&t.full).is_ok()); }
        match &t.namespace {
            Namespace::Public => {}
            Namespace::User(owner) if owner == &user => {}
            Namespace::User(owner) => {
                prop_assert_ne!(owner, &user);
                // an unlisted, non-admin, non-owner never gets in
                let me = Who { name: &user, fingerprint: "SHA256:me", admin: false };
                prop_assert!(!may_use(&t, None, None, &me));
                let others = parse_access(&["carol".into(), FP_A.into()]).unwrap();
                if user != "carol" && user != FP_A {
                    prop_assert!(!may_use(&t, Some(&others), None, &me));
                    prop_assert!(!may_use(&t, Some(&others), Some(&user), &me));
                }
                prop_assert!(!may_set_access(&t, false, None, &me));
                prop_assert!(!may_set_access(&t, true, Some(&user), &me));
            }
        }
    }

    #[test]
    fn private_topic_closed_to_unlisted(owner in arb_user(), user in arb_user(), local in "[a-z/]{1,10}",
                                        listed in proptest::collection::vec(arb_user(), 0..4), public_owner: Option<String>) {
        prop_assume!(owner != user && !listed.contains(&user));
        let t = TopicRef { full: format!("{owner}/{local}"), namespace: Namespace::User(owner.clone()), local };
        let acl = AccessList(listed);
        let me = Who { name: &user, fingerprint: "SHA256:me", admin: false };
        prop_assert!(!may_use(&t, Some(&acl), public_owner.as_deref(), &me));
        prop_assert!(!may_use(&t, None, public_owner.as_deref(), &me));
    }

    #[test]
    fn wildcards_never_match_slash(pattern in "[a-c*?/]{0,8}", name in "[a-c/]{0,8}") {
        if pattern_matches(&pattern, &name) {
            prop_assert_eq!(pattern.matches('/').count(), name.matches('/').count());
        }
        // replacing a '/' in the name with a letter never changes segment alignment unnoticed
        let star_only = pattern.replace('/', "*");
        if !star_only.contains('/') && name.contains('/') {
            prop_assert!(!pattern_matches(&star_only, &name));
        }
    }

    #[test]
    fn literal_pattern_matches_only_itself(pattern in "[a-c/.]{0,8}", name in "[a-c/.]{0,8}") {
        prop_assert_eq!(pattern_matches(&pattern, &name), pattern == name);
        prop_assert!(pattern_matches(&pattern, &pattern));
    }

    #[test]
    fn pattern_agrees_with_reference(pattern in "[ab*?/]{0,7}", name in "[ab/]{0,7}") {
        prop_assert_eq!(pattern_matches(&pattern, &name), reference_match(&pattern.chars().collect::<Vec<_>>(), &name.chars().collect::<Vec<_>>()));
    }

    #[test]
    fn validate_never_panics(s in any::<String>()) {
        let _ = validate(&s);
        let _ = validate_pattern(&s);
        let _ = is_pattern(&s);
        let _ = pattern_matches(&s, &s);
    }
}

/// Obviously-correct exponential matcher.
fn reference_match(p: &[char], n: &[char]) -> bool {
    match p.split_first() {
        None => n.is_empty(),
        Some(('*', rest)) => (0..=n.len())
            .take_while(|&k| k == 0 || n[k - 1] != '/')
            .any(|k| reference_match(rest, &n[k..])),
        Some(('?', rest)) => n.first().is_some_and(|&c| c != '/') && reference_match(rest, &n[1..]),
        Some((c, rest)) => n.first() == Some(c) && reference_match(rest, &n[1..]),
    }
}
