#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::hostkey::generate_ed25519;
use russh::keys::PrivateKey;
use russh::keys::ssh_key::certificate::Builder;

const SHORT_RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDAgQMR66ZdeecQbq7tyajSjE5ArCDC9cLXIcvhhcnVG2BPgMliOKPiGJS0UuYnwqSTim6LUhznmB6ie/Q8NkmLaA+GmzrpLv5DC2Ze23g6077x1z0uWxPtMW1s0BN0XT6F2MDCF7aUGGJGejm6R3SOGfBUOfGGDILDfws3mB956Q== short";

const NOW: u64 = 1_800_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn source_address_lists() {
    let cases: &[(&str, &str, Option<bool>)] = &[
        ("127.0.0.1", "127.0.0.1", Some(true)),
        ("127.0.0.1/32", "127.0.0.2", Some(false)),
        ("10.0.0.0/8,127.0.0.0/8", "127.9.9.9", Some(true)),
        ("10.0.0.0/8", "127.0.0.1", Some(false)),
        ("0.0.0.0/0", "203.0.113.7", Some(true)),
        ("192.168.1.77/24", "192.168.1.1", Some(true)),
        ("::1", "::1", Some(true)),
        ("::1/128", "127.0.0.1", Some(false)),
        ("2001:db8::/32", "2001:db8:1::5", Some(true)),
        ("::/0", "2001:db8::1", Some(true)),
        // An IPv4-mapped peer is its IPv4 address.
        ("127.0.0.1", "::ffff:127.0.0.1", Some(true)),
        // Malformed: refuse the whole certificate.
        ("127.0.0.1/33", "127.0.0.1", None),
        ("10.0.0.0/8,::1/129", "10.1.1.1", None),
        ("localhost", "127.0.0.1", None),
        ("127.0.0.*", "127.0.0.1", None),
        ("", "127.0.0.1", None),
        ("127.0.0.1,", "127.0.0.1", None),
        ("127.0.0.1/", "127.0.0.1", None),
    ];
    for (list, peer, want) in cases {
        assert_eq!(
            source_address_allows(list, ip(peer)),
            *want,
            "{list} vs {peer}"
        );
    }
}

#[test]
fn ca_file_skips_comments_and_names_a_bad_line() {
    let ca = generate_ed25519("ca").unwrap();
    let line = ca.public_key().to_openssh().unwrap();
    let text = format!("# our CAs\n\n   {line}\n");
    let cas = TrustedCas::parse(&text).unwrap();
    assert_eq!(cas.len(), 1);
    assert!(cas.trusts(ca.public_key().key_data()));
    assert!(TrustedCas::parse("").unwrap().is_empty());

    let err = TrustedCas::parse(&format!("{line}\n# x\nssh-ed25519 notbase64\n")).unwrap_err();
    assert!(matches!(err, CaFileError::BadKey { line: 3, .. }), "{err}");
    assert!(err.to_string().starts_with("line 3: "), "{err}");

    let err = TrustedCas::parse(&format!("{SHORT_RSA}\n")).unwrap_err();
    assert_eq!(
        err,
        CaFileError::Refused {
            line: 1,
            refusal: KeyRefusal::ShortRsa { bits: 1024 }
        }
    );
}

struct Fixture {
    ca: PrivateKey,
    cas: TrustedCas,
    user_key: PrivateKey,
    users: Users,
}

fn fixture() -> Fixture {
    let ca = generate_ed25519("ca").unwrap();
    let cas = TrustedCas::parse(&ca.public_key().to_openssh().unwrap()).unwrap();
    let users =
        Users::parse("[users.alice]\nkeys = []\n[users.root]\nkeys = []\nadmin = true\n").unwrap();
    Fixture {
        ca,
        cas,
        user_key: generate_ed25519("user").unwrap(),
        users,
    }
}

/// A user certificate for `principals`, valid around NOW unless `shape` changes it.
fn cert(f: &Fixture, principals: &[&str], shape: impl FnOnce(&mut Builder)) -> Certificate {
    cert_by(&f.ca, f, principals, shape)
}

fn cert_by(
    ca: &PrivateKey,
    f: &Fixture,
    principals: &[&str],
    shape: impl FnOnce(&mut Builder),
) -> Certificate {
    let mut b = Builder::new(
        [7u8; 16].to_vec(),
        f.user_key.public_key().key_data().clone(),
        NOW - 60,
        NOW + 60,
    )
    .unwrap();
    // No cert_type call: a builder takes it once, and its default is User.
    for p in principals {
        b.valid_principal(*p).unwrap();
    }
    shape(&mut b);
    b.sign(ca).unwrap()
}

fn policy(f: &Fixture, open: bool) -> CertPolicy<'_> {
    CertPolicy {
        cas: &f.cas,
        users: &f.users,
        open,
    }
}

#[test]
fn trusted_certificate_names_its_first_valid_principal() {
    let f = fixture();
    let peer = ip("127.0.0.1");
    let c = cert(
        &f,
        &[
            "Not Valid",
            "public",
            "fp-AAAAAAAAAAAAAAAA",
            "carol",
            "alice",
        ],
        |_| {},
    );
    // Open mode: any valid, unreserved name; users mode: a listed user.
    assert_eq!(policy(&f, true).user_of(&c, peer, NOW).unwrap(), "carol");
    assert_eq!(policy(&f, false).user_of(&c, peer, NOW).unwrap(), "alice");
    let c = cert(&f, &["public", "fp-AAAAAAAAAAAAAAAA", "carol"], |_| {});
    assert!(matches!(
        policy(&f, false).user_of(&c, peer, NOW),
        Err(CertRefusal::NoPrincipal(_))
    ));
}

#[test]
fn certificate_refusals() {
    let f = fixture();
    let peer = ip("127.0.0.1");
    let open = policy(&f, true);
    let refusal = |c: &Certificate, at: u64| open.user_of(c, peer, at).unwrap_err();

    let stranger = generate_ed25519("other ca").unwrap();
    let c = cert_by(&stranger, &f, &["alice"], |_| {});
    assert!(matches!(refusal(&c, NOW), CertRefusal::UntrustedCa(_)));

    let c = cert(&f, &["alice"], |_| {});
    assert_eq!(refusal(&c, NOW - 61), CertRefusal::NotYetValid);
    assert_eq!(refusal(&c, NOW + 60), CertRefusal::Expired);
    assert!(
        open.user_of(&c, peer, NOW - 60).is_ok(),
        "valid after is inclusive"
    );

    let c = cert(&f, &["alice"], |b| {
        b.cert_type(CertType::Host).unwrap();
    });
    assert_eq!(refusal(&c, NOW), CertRefusal::NotUserCert);

    let c = cert(&f, &["alice"], |b| {
        b.critical_option("force-command", "ls").unwrap();
    });
    assert_eq!(
        refusal(&c, NOW),
        CertRefusal::CriticalOption("force-command".into())
    );

    let c = cert(&f, &["alice"], |b| {
        b.critical_option(SOURCE_ADDRESS, "10.0.0.0/8").unwrap();
    });
    assert!(matches!(
        refusal(&c, NOW),
        CertRefusal::SourceAddress { .. }
    ));
    assert_eq!(open.user_of(&c, ip("10.2.3.4"), NOW).unwrap(), "alice");

    let c = cert(&f, &["alice"], |b| {
        b.critical_option(SOURCE_ADDRESS, "10.0.0.0/99").unwrap();
    });
    assert!(matches!(refusal(&c, NOW), CertRefusal::BadSourceAddress(_)));

    let c = cert(&f, &[], |b| {
        b.all_principals_valid().unwrap();
    });
    assert!(matches!(refusal(&c, NOW), CertRefusal::NoPrincipal(_)));
}

#[test]
fn a_listed_admin_keeps_admin_through_a_certificate() {
    let f = fixture();
    let id = super::super::certified(&f.users, "root", "SHA256:x");
    assert!(id.admin && !id.anonymous);
    let id = super::super::certified(&f.users, "carol", "SHA256:x");
    assert!(!id.admin && !id.anonymous);
}

#[test]
fn a_refusal_is_vouched_for_only_by_a_trusted_ca() {
    let f = fixture();
    let open = policy(&f, true);
    let c = cert(&f, &["Bad Name", "alice"], |b| {
        b.critical_option("force-command", "ls").unwrap();
    });
    assert!(open.user_of(&c, ip("127.0.0.1"), NOW).is_err());
    assert_eq!(open.vouched_user(&c).as_deref(), Some("alice"));
    // Anyone can write "alice" into a certificate of their own CA.
    let stranger = generate_ed25519("other ca").unwrap();
    let c = cert_by(&stranger, &f, &["alice"], |_| {});
    assert_eq!(open.vouched_user(&c), None);
    assert_eq!(open.principal_user(&c).as_deref(), Some("alice"));
}
