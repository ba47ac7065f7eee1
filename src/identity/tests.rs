#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use std::path::Path;
use std::process::Command;

/// Generate an ed25519 key with ssh-keygen in `dir`; return (public key line, ssh-keygen -lf fingerprint).
fn keygen(dir: &Path, name: &str) -> (String, String) {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-t", "ed25519", "-N", "", "-q", "-C", name, "-f"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    let pub_line = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(path.with_extension("pub"))
        .output()
        .unwrap();
    assert!(out.status.success());
    // "256 SHA256:xxxx comment (ED25519)"
    let text = String::from_utf8(out.stdout).unwrap();
    let fp = text.split_whitespace().nth(1).unwrap().to_string();
    (pub_line.trim().to_string(), fp)
}

#[test]
fn fingerprint_matches_ssh_keygen() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3 {
        let (line, expected) = keygen(dir.path(), &format!("k{i}"));
        let key = PublicKey::from_openssh(&line).unwrap();
        assert_eq!(fingerprint(&key), expected);
        assert!(expected.starts_with("SHA256:"));
        assert!(!expected.ends_with('='));
    }
}

#[test]
fn fingerprint_matches_ssh_keygen_rsa() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rsa");
    let ok = Command::new("ssh-keygen")
        .args(["-t", "rsa", "-b", "2048", "-N", "", "-q", "-f"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(ok.success());
    let line = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(path.with_extension("pub"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let expected = text.split_whitespace().nth(1).unwrap();
    let key = PublicKey::from_openssh(line.trim()).unwrap();
    assert_eq!(fingerprint(&key), expected);
}

#[test]
fn user_names() {
    let cases: &[(&str, bool)] = &[
        ("alice", true),
        ("a", true),
        ("0", true),
        ("bob-2_x", true),
        ("9lives", true),
        (&"a".repeat(32), true),
        (&"a".repeat(33), false),
        ("", false),
        ("Alice", false),
        ("-alice", false),
        ("_alice", false),
        ("al ice", false),
        ("al/ice", false),
        ("al.ice", false),
        ("al*", false),
        ("public", false),
        ("publicx", true),
        ("fp-", false),
        ("fp-abc", false),
        ("fp", true),
        ("fpx-abc", true),
        ("élan", false),
    ];
    for (name, ok) in cases {
        assert_eq!(valid_user_name(name), *ok, "{name:?}");
    }
}

#[test]
fn anonymous_names() {
    let fp = "SHA256:ab+/CDEFghij0123xyzXYZ0123456789abcdefghijk";
    let name = anonymous_name(fp);
    assert_eq!(name, "fp-ab-_CDEFghij0123");
    assert!(is_anonymous_name(&name));
    assert!(!valid_user_name(&name));
    // without the prefix
    assert_eq!(anonymous_name("ab+/CDEFghij0123xyz"), name);

    let cases: &[(&str, bool)] = &[
        ("fp-ab-_CDEFghij0123", true),
        ("fp-AAAAAAAAAAAAAAAA", true),
        ("fp-AAAAAAAAAAAAAAA", false),
        ("fp-AAAAAAAAAAAAAAAAA", false),
        ("fp-AAAAAAAA+AAAAAAA", false),
        ("fp-AAAAAAAA/AAAAAAA", false),
        ("fp-AAAAAAAA*AAAAAAA", false),
        ("FP-AAAAAAAAAAAAAAAA", false),
        ("xfp-AAAAAAAAAAAAAAA", false),
        ("", false),
    ];
    for (s, ok) in cases {
        assert_eq!(is_anonymous_name(s), *ok, "{s:?}");
    }
}

#[test]
fn anonymous_name_of_real_key_is_stable_and_valid() {
    let dir = tempfile::tempdir().unwrap();
    let (_, fp) = keygen(dir.path(), "anon");
    let id = anonymous(&fp);
    assert!(is_anonymous_name(&id.name), "{}", id.name);
    assert_eq!(id.name, anonymous_name(&fp));
    assert!(!id.admin);
    assert!(id.anonymous);
    assert_eq!(id.fingerprint, fp);
}

#[test]
fn whoami() {
    let id = Identity {
        name: "alice".into(),
        fingerprint: "SHA256:xyz".into(),
        admin: true,
        anonymous: false,
    };
    assert_eq!(
        id.whoami_text(),
        "user: alice\nfingerprint: SHA256:xyz\nadmin: yes\n"
    );
    let id = Identity { admin: false, ..id };
    assert!(id.whoami_text().ends_with("admin: no\n"));
}

#[test]
fn parse_users_file() {
    let dir = tempfile::tempdir().unwrap();
    let (a1, fa1) = keygen(dir.path(), "a1");
    let (a2, fa2) = keygen(dir.path(), "a2");
    let (b1, fb1) = keygen(dir.path(), "b1");
    let (_, unlisted) = keygen(dir.path(), "u");
    let text = format!(
        "# users\n[users.alice]\nkeys = [\"{a1}\", \"{a2}\"]\n\n[users.bob]\nkeys = [\"{b1}\"]\nadmin = true\n"
    );
    let users = Users::parse(&text).unwrap();
    assert_eq!(users.len(), 2);
    assert!(!users.is_empty());
    assert_eq!(users.lookup(&fa1), Some(("alice", false)));
    assert_eq!(users.lookup(&fa2), Some(("alice", false)));
    assert_eq!(users.lookup(&fb1), Some(("bob", true)));
    assert_eq!(users.lookup(&unlisted), None);
    assert!(users.is_user("alice"));
    assert!(users.is_user("bob"));
    assert!(!users.is_user("carol"));
    assert_eq!(users.names().collect::<Vec<_>>(), ["alice", "bob"]);

    let id = identify(&users, &fb1).unwrap();
    assert_eq!(
        id,
        Identity {
            name: "bob".into(),
            fingerprint: fb1.clone(),
            admin: true,
            anonymous: false
        }
    );
    assert_eq!(identify(&users, &unlisted), None);
}

#[test]
fn parse_empty_users_file() {
    for text in ["", "# nothing\n", "[users]\n"] {
        let users = Users::parse(text).unwrap();
        assert!(users.is_empty());
        assert_eq!(users.len(), 0);
    }
}

/// Parse and return the error message; checks it is one line.
fn err(text: &str) -> String {
    let e = Users::parse(text).unwrap_err().to_string();
    assert!(!e.contains('\n'), "multi-line error: {e}");
    e
}

#[test]
fn users_file_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let (a1, fa1) = keygen(dir.path(), "a1");

    // syntax error on line 3
    let e = err("[users.alice]\nkeys = []\nadmin = = true\n");
    assert!(e.starts_with("users file line 3: "), "{e}");

    // unknown field in a user table, line 3
    let e = err(&format!("[users.alice]\nkeys = [\"{a1}\"]\nadmn = true\n"));
    assert!(e.starts_with("users file line 3: "), "{e}");
    assert!(e.contains("admn"), "{e}");

    // unknown top-level field
    let e = err("[user.alice]\nkeys = []\n");
    assert!(e.starts_with("users file line 1: "), "{e}");
    assert!(e.contains("user"), "{e}");

    // wrong type
    let e = err("\n[users.alice]\nkeys = \"ssh-ed25519 x\"\n");
    assert!(e.starts_with("users file line 3: "), "{e}");

    // missing keys
    let e = err("[users.alice]\nadmin = true\n");
    assert!(e.contains("keys"), "{e}");

    // invalid name
    let e = err("\n\n[users.Bob]\nkeys = []\n");
    assert_eq!(
        e,
        "users file: invalid user name \"Bob\" (line 3): names are 1-32 of a-z 0-9 _ -, starting with a letter or digit"
    );

    // reserved names
    let e = err("[users.public]\nkeys = []\n");
    assert!(
        e.starts_with("users file: user name \"public\" is reserved (line 1)"),
        "{e}"
    );
    let e = err("[users.alice]\nkeys = []\n[users.fp-abc]\nkeys = []\n");
    assert!(
        e.starts_with("users file: user name \"fp-abc\" is reserved (line 3)"),
        "{e}"
    );

    // bad key
    let e = err("[users.alice]\nkeys = [\n  \"ssh-ed25519 notbase64!!\",\n]\n");
    assert!(
        e.starts_with("users file: user \"alice\": bad key \"ssh-ed25519 notbase64!!\": "),
        "{e}"
    );
    assert!(e.ends_with("(line 3)"), "{e}");

    // duplicate across users (different comment, same key)
    let a1_other_comment = format!("{} other@host", a1.rsplit_once(' ').unwrap().0);
    let e = err(&format!(
        "[users.carol]\nkeys = [\"{a1}\"]\n[users.alice]\nkeys = [\"{a1_other_comment}\"]\n"
    ));
    assert_eq!(
        e,
        format!("users file: key {fa1} is listed twice (users carol and alice, lines 2 and 4)")
    );

    // duplicate within one user
    let e = err(&format!("[users.alice]\nkeys = [\n\"{a1}\",\n\"{a1}\"]\n"));
    assert_eq!(
        e,
        format!("users file: key {fa1} is listed twice (users alice and alice, lines 3 and 4)")
    );

    // duplicate table (TOML itself)
    let e = err("[users.alice]\nkeys = []\n[users.alice]\nkeys = []\n");
    assert!(e.starts_with("users file line 3: "), "{e}");
}

/// Found by fuzz/ (users_file): a key whose base64 decodes to a label with a
/// `\r` in it gave a bad-key message that was not one line.
#[test]
fn a_bad_key_message_is_one_line_whatever_the_key_decodes_to() {
    let e = err("[users.alice]\nkeys = [\"ssh-ed25519 AAAAC3NzaC1l1INZDTE5\"]\n");
    assert!(e.starts_with("users file: user \"alice\": bad key "), "{e}");
    assert!(!e.contains(|c: char| c.is_control()), "{e:?}");
    assert!(e.ends_with("(line 2)"), "{e}");
}

#[test]
fn a_listed_key_that_could_never_log_in_is_an_error() {
    let short = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDAgQMR66ZdeecQbq7tyajSjE5ArCDC9cLXIcvhhcnVG2BPgMliOKPiGJS0UuYnwqSTim6LUhznmB6ie/Q8NkmLaA+GmzrpLv5DC2Ze23g6077x1z0uWxPtMW1s0BN0XT6F2MDCF7aUGGJGejm6R3SOGfBUOfGGDILDfws3mB956Q== short";
    let err = Users::parse(&format!("[users.alice]\nkeys = [\n  \"{short}\",\n]\n")).unwrap_err();
    let UsersError::BadKey { line, reason, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*line, 3);
    assert!(reason.contains("RSA key of 1024 bits"), "{err}");
}
