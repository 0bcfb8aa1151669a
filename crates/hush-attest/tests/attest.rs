//! Attestations made with the real tools people use — `gpg` for OpenPGP, `openssl` for X.509 —
//! checked by hush-attest: accepted under the right anchor, refused under a wrong key or
//! anchor, for another device's statement, with a changed signature, or out of a certificate's
//! validity. A test without `gpg` or `openssl` fails (`./scripts/test` installs them).

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::path::{Path, PathBuf};

use hush_attest::{Anchors, AttestError, Attestation, OpenPgp, Statement, VouchedBy, X509};
use hush_proto::IdentityKeyPair;
use hush_test_support::tools::{gpg_revoke, run};
use rand::SeedableRng;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hush-attest-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn statement(device: u32, seed: u64) -> Statement {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Statement {
        jid: "alice@example.org".into(),
        device,
        identity: *IdentityKeyPair::generate(&mut rng).public(),
    }
}

/// A new OpenPGP key in `dir`'s keyring for `uid` (`algo`: `ed25519` or `rsa2048`) that never
/// expires; gives its armored public key and fingerprint.
fn gpg_key(dir: &Path, uid: &str, algo: &str) -> (String, String) {
    gpg_key_expiring(dir, uid, algo, "never")
}

/// [`gpg_key`] with an expiry as gpg takes it (`never`, `1d`, …).
fn gpg_key_expiring(dir: &Path, uid: &str, algo: &str, expires: &str) -> (String, String) {
    std::fs::create_dir_all(dir.join("gnupg")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("gnupg"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
    }
    run(
        dir,
        "gpg",
        &[
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            uid,
            algo,
            "sign",
            expires,
        ],
    );
    let armored = run(dir, "gpg", &["--batch", "--armor", "--export", uid]);
    let listing = String::from_utf8(run(
        dir,
        "gpg",
        &["--batch", "--with-colons", "--fingerprint", uid],
    ))
    .unwrap();
    let fingerprint = listing
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .unwrap()
        .to_ascii_lowercase();
    (String::from_utf8(armored).unwrap(), fingerprint)
}

fn gpg_sign(dir: &Path, uid: &str, statement: &Statement) -> OpenPgp {
    std::fs::write(dir.join("statement.txt"), statement.to_bytes()).unwrap();
    let _ = std::fs::remove_file(dir.join("statement.txt.asc"));
    run(
        dir,
        "gpg",
        &[
            "--batch",
            "--yes",
            "--local-user",
            uid,
            "--detach-sign",
            "--armor",
            "statement.txt",
        ],
    );
    OpenPgp {
        signature: std::fs::read_to_string(dir.join("statement.txt.asc")).unwrap(),
    }
}

#[test]
fn an_expired_openpgp_key_vouches_for_nothing() {
    let dir = scratch("openpgp-expiry");
    let me = statement(7, 1);
    let uid = "Alice <alice@example.org>";
    let (key, fingerprint) = gpg_key_expiring(&dir, uid, "ed25519", "1d");
    let attestation = gpg_sign(&dir, uid, &me);
    let anchors = Anchors {
        openpgp: vec![key],
        x509: vec![],
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(
        attestation.check(&me, &anchors, now),
        Ok(VouchedBy::OpenPgp {
            fingerprint,
            user_id: Some(uid.to_owned())
        })
    );
    let two_days_on = now + 2 * 86_400;
    let expired = |anchors: &Anchors| {
        assert!(
            matches!(
                attestation.check(&me, anchors, two_days_on),
                Err(AttestError::KeyExpired { what: "key", at }) if at > now && at < two_days_on
            ),
            "{:?}",
            attestation.check(&me, anchors, two_days_on)
        );
    };
    expired(&anchors);
    // A user id added and then revoked leaves newer signatures without an expiry on the key:
    // the expiry still holds (only certifications and direct-key signatures carry it).
    let other = "Alice at work <alice@work.example>";
    run(
        &dir,
        "gpg",
        &["--batch", "--passphrase", "", "--quick-add-uid", uid, other],
    );
    run(
        &dir,
        "gpg",
        &[
            "--batch",
            "--passphrase",
            "",
            "--quick-revoke-uid",
            uid,
            other,
        ],
    );
    let exported = run(&dir, "gpg", &["--batch", "--armor", "--export", uid]);
    let revoked_uid = Anchors {
        openpgp: vec![String::from_utf8(exported).unwrap()],
        x509: vec![],
    };
    assert!(attestation.check(&me, &revoked_uid, now).is_ok());
    expired(&revoked_uid);
}

#[test]
fn a_revoked_openpgp_key_vouches_for_nothing() {
    let dir = scratch("openpgp-revoked");
    let me = statement(7, 1);
    let uid = "Alice <alice@example.org>";
    let (before, fingerprint) = gpg_key(&dir, uid, "ed25519");
    let attestation = gpg_sign(&dir, uid, &me);
    assert_eq!(hush_attest::openpgp_revoked(&before), Ok(false));
    let after = String::from_utf8(gpg_revoke(&dir, &fingerprint, uid)).unwrap();
    assert_eq!(hush_attest::openpgp_revoked(&after), Ok(true));
    let anchors = |key: &str| Anchors {
        openpgp: vec![key.to_owned()],
        x509: vec![],
    };
    assert!(attestation.check(&me, &anchors(&before), 0).is_ok());
    assert_eq!(
        attestation.check(&me, &anchors(&after), 0),
        Err(AttestError::Revoked)
    );
}

#[test]
fn openpgp_signatures_vouch_under_the_right_key_only() {
    let dir = scratch("openpgp");
    let me = statement(7, 1);
    for (uid, algo) in [
        ("Alice <alice@example.org>", "ed25519"),
        ("Alice (RSA key) <alice@example.org>", "rsa2048"),
    ] {
        let (key, fingerprint) = gpg_key(&dir, uid, algo);
        let attestation = gpg_sign(&dir, uid, &me);
        let anchors = Anchors {
            openpgp: vec![key.clone()],
            x509: vec![],
        };
        assert_eq!(attestation.kind(), "OpenPGP");
        assert_eq!(
            attestation.check(&me, &anchors, 0),
            Ok(VouchedBy::OpenPgp {
                fingerprint: fingerprint.clone(),
                user_id: Some(uid.to_owned())
            }),
            "{algo}"
        );
        // Another device's statement (another key, or another id) is not what was signed.
        for other in [statement(7, 2), statement(8, 1)] {
            assert_eq!(
                attestation.check(&other, &anchors, 0),
                Err(AttestError::BadSignature("OpenPGP key")),
                "{algo}"
            );
        }
        // A trusted key vouches only for the account its user id names.
        let carol = Statement {
            jid: "carol@example.org".into(),
            ..me.clone()
        };
        let for_carol = gpg_sign(&dir, uid, &carol);
        assert!(
            matches!(
                for_carol.check(&carol, &anchors, 0),
                Err(AttestError::NotForAccount { .. })
            ),
            "{algo}"
        );
        // No anchor, and a key the user does not trust.
        let none = Anchors::default();
        assert_eq!(
            attestation.check(&me, &none, 0),
            Err(AttestError::NoAnchor("OpenPGP key"))
        );
        let (stranger, _) = gpg_key(&dir, &format!("Mallory {algo} <m@example.net>"), algo);
        let wrong = Anchors {
            openpgp: vec![stranger],
            x509: vec![],
        };
        assert_eq!(
            attestation.check(&me, &wrong, 0),
            Err(AttestError::BadSignature("OpenPGP key"))
        );
    }
    let garbage = OpenPgp {
        signature: "-----BEGIN PGP SIGNATURE-----\n\nnonsense\n-----END PGP SIGNATURE-----\n"
            .into(),
    };
    assert!(matches!(
        garbage.check(&me, &Anchors::default(), 0),
        Err(AttestError::Malformed { .. })
    ));
}

/// A CA (`name`) with a key of `algo` (`ec` P-256, `ed25519`, `rsa`), in `dir`.
fn openssl_ca(dir: &Path, name: &str) {
    run(
        dir,
        "openssl",
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &format!("{name}.key"),
        ],
    );
    run(
        dir,
        "openssl",
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            &format!("/CN={name}"),
            "-days",
            "30",
            "-out",
            &format!("{name}.pem"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
}

/// A leaf certificate `name` issued by `ca`, with a key of `algo`; gives its DER.
fn openssl_leaf(dir: &Path, ca: &str, name: &str, algo: &str) -> Vec<u8> {
    let key = format!("{name}.key");
    match algo {
        "ec" => run(
            dir,
            "openssl",
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                &key,
            ],
        ),
        "ed25519" => run(
            dir,
            "openssl",
            &["genpkey", "-algorithm", "ed25519", "-out", &key],
        ),
        _ => run(
            dir,
            "openssl",
            &[
                "genpkey",
                "-algorithm",
                "rsa",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                &key,
            ],
        ),
    };
    run(
        dir,
        "openssl",
        &[
            "req",
            "-new",
            "-key",
            &key,
            "-subj",
            &format!("/CN={name}/emailAddress=alice@example.org"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    run(
        dir,
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "10",
            "-out",
            &format!("{name}.pem"),
        ],
    );
    run(
        dir,
        "openssl",
        &["x509", "-in", &format!("{name}.pem"), "-outform", "DER"],
    )
}

fn openssl_sign(dir: &Path, name: &str, algo: &str, statement: &Statement) -> Vec<u8> {
    std::fs::write(dir.join("statement.txt"), statement.to_bytes()).unwrap();
    let key = format!("{name}.key");
    match algo {
        "ed25519" => run(
            dir,
            "openssl",
            &[
                "pkeyutl",
                "-sign",
                "-rawin",
                "-inkey",
                &key,
                "-in",
                "statement.txt",
            ],
        ),
        _ => run(
            dir,
            "openssl",
            &["dgst", "-sha256", "-sign", &key, "statement.txt"],
        ),
    }
}

fn der_of(dir: &Path, pem: &str) -> Vec<u8> {
    run(dir, "openssl", &["x509", "-in", pem, "-outform", "DER"])
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn x509_signatures_vouch_under_the_right_authority_only() {
    let dir = scratch("x509");
    openssl_ca(&dir, "Example CA");
    openssl_ca(&dir, "Other CA");
    let anchors = Anchors {
        openpgp: vec![],
        x509: vec![der_of(&dir, "Example CA.pem")],
    };
    let me = statement(9, 3);
    for algo in ["ec", "ed25519", "rsa"] {
        let name = format!("alice-{algo}");
        let leaf = openssl_leaf(&dir, "Example CA", &name, algo);
        let attestation = X509 {
            chain: vec![leaf.clone()],
            signature: openssl_sign(&dir, &name, algo, &me),
        };
        assert_eq!(attestation.kind(), "X.509");
        let vouched = attestation
            .check(&me, &anchors, now())
            .unwrap_or_else(|e| panic!("{algo}: {e}"));
        let VouchedBy::X509 {
            subject,
            anchor,
            anchor_id,
        } = vouched
        else {
            panic!("{vouched:?}")
        };
        assert!(subject.contains(&name), "{subject}");
        assert_eq!(anchor, "CN=Example CA");
        // The anchor's id, as `hush attest anchors` lists it.
        let (_, listed_id) = hush_attest::x509_anchor(&anchors.x509[0]).unwrap();
        assert_eq!(anchor_id, listed_id);
        // Another device's statement, a changed signature, another authority, out of time.
        assert_eq!(
            attestation.check(&statement(10, 3), &anchors, now()),
            Err(AttestError::BadSignature("certificate")),
            "{algo}"
        );
        let mut bent = attestation.clone();
        let last = bent.signature.len() - 1;
        bent.signature[last] ^= 1;
        assert_eq!(
            bent.check(&me, &anchors, now()),
            Err(AttestError::BadSignature("certificate")),
            "{algo}"
        );
        let other = Anchors {
            openpgp: vec![],
            x509: vec![der_of(&dir, "Other CA.pem")],
        };
        assert!(matches!(
            attestation.check(&me, &other, now()),
            Err(AttestError::Untrusted(_))
        ));
        assert!(matches!(
            attestation.check(&me, &anchors, now() + 100 * 86_400),
            Err(AttestError::Expired { .. })
        ));
    }
    // A certificate vouches only for the account it names.
    let carol = Statement {
        jid: "carol@example.org".into(),
        ..me.clone()
    };
    let for_carol = X509 {
        chain: vec![openssl_leaf(&dir, "Example CA", "alice-again", "ec")],
        signature: openssl_sign(&dir, "alice-again", "ec", &carol),
    };
    assert!(matches!(
        for_carol.check(&carol, &anchors, now()),
        Err(AttestError::NotForAccount { .. })
    ));
    // A certificate signed by a leaf (not a CA) does not chain.
    let mallory = openssl_leaf(&dir, "Example CA", "mallory", "ec");
    let not_ca = X509 {
        chain: vec![mallory.clone(), mallory],
        signature: openssl_sign(&dir, "mallory", "ec", &me),
    };
    assert!(matches!(
        not_ca.check(&me, &anchors, now()),
        Err(AttestError::NotACa(_))
    ));
    assert!(matches!(
        X509 {
            chain: vec![b"not a certificate".to_vec()],
            signature: vec![]
        }
        .check(&me, &anchors, now()),
        Err(AttestError::Malformed { .. })
    ));
}
