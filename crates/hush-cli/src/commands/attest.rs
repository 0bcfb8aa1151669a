//! `hush attest`: OpenPGP and X.509 attestations of identity keys (see [`hush_attest`]).
//!
//! * `hush attest statement` prints this device's statement, the exact bytes to sign
//!   (`gpg --detach-sign --armor`, `openssl dgst -sha256 -sign KEY`).
//! * `hush attest publish --openpgp SIG.asc` / `--x509-chain CHAIN.pem --x509-signature SIG`
//!   publishes the signatures with this device's keys (a certificate's signature is checked
//!   against its key first, so a mistake shows here, not at every contact).
//! * `hush attest anchor --openpgp KEY.asc` / `--x509 CA.pem` adds a key or certification
//!   authority the user trusts to vouch for others' keys; `hush attest anchors` lists them.
//! * `hush attest check JID` reads what JID's devices published and verifies each device an
//!   anchor vouches for — recorded as "by OpenPGP key …" or "by X.509 subject …", and
//!   announced by Automatic Trust Management as any verification.

use base64::Engine as _;
use hush_attest::{Anchors, Attestation, OpenPgp, Published, Statement, VouchedBy, X509};
use hush_engine::UserDecision;
use hush_store::{SqliteStore, Store, Trust, TrustSource};
use hush_xmpp::BareJid;
use serde_json::{json, Value};

use super::{account, connect};
use crate::error::{CliError, Result};
use crate::home::Home;
use crate::output::{Printer, Shown};
use crate::terminal::printable;

/// The settings holding the anchors (JSON arrays: armored keys; Base64 DER certificates).
const OPENPGP_ANCHORS: &str = "attest_openpgp_anchors";
const X509_ANCHORS: &str = "attest_x509_anchors";

/// What `hush attest` was asked.
pub(crate) enum Ask {
    /// Print this device's statement.
    Statement,
    /// Publish signatures over it.
    Publish {
        openpgp: Option<std::path::PathBuf>,
        x509_chain: Option<std::path::PathBuf>,
        x509_signature: Option<std::path::PathBuf>,
    },
    /// Trust an OpenPGP key or a certification authority to vouch for keys.
    Anchor {
        openpgp: Option<std::path::PathBuf>,
        x509: Option<std::path::PathBuf>,
    },
    /// Stop trusting the anchor with this id (or prefix of it).
    RemoveAnchor(String),
    /// List the anchors.
    Anchors,
    /// Check what a contact's devices published.
    Check(BareJid),
}

pub(super) async fn run(home: &Home, ask: Ask, out: Printer) -> Result<()> {
    match ask {
        Ask::Statement => {
            let store = home.open_store_to_read()?;
            let statement = own_statement(&store)?;
            let text = String::from_utf8_lossy(&statement.to_bytes()).into_owned();
            if out.is_json() {
                out.show(&Shown {
                    json: json!({"statement": text}),
                    text: Vec::new(),
                })
            } else {
                // Exactly the bytes to sign: written as they are, not through the line fitter.
                use std::io::Write;
                let mut stdout = std::io::stdout().lock();
                stdout
                    .write_all(text.as_bytes())
                    .and_then(|()| stdout.flush())
                    .map_err(CliError::Output)
            }
        }
        Ask::Publish {
            openpgp,
            x509_chain,
            x509_signature,
        } => publish(home, openpgp, x509_chain, x509_signature, out).await,
        Ask::Anchor { openpgp, x509 } => {
            let mut store = home.open_store()?;
            let mut anchors = anchors(&store)?;
            let mut added = Vec::new();
            if let Some(path) = openpgp {
                let key = read_text(&path)?;
                // Refused now if it is no key, rather than at every check.
                let fingerprint = match hush_attest::openpgp_key(&key)? {
                    hush_attest::VouchedBy::OpenPgp { fingerprint, .. } => fingerprint,
                    hush_attest::VouchedBy::X509 { .. } => String::new(),
                };
                // A key added again replaces the copy kept: a newer export carries its new
                // revocations and expiry.
                let kept = described(&anchors);
                let same = kept
                    .iter()
                    .find(|a| a.kind == AnchorKind::OpenPgp && a.id == fingerprint);
                match same {
                    // A revoked key stays revoked: a copy without the revocation (an older
                    // export) does not replace it.
                    Some(a)
                        if hush_attest::openpgp_revoked(&anchors.openpgp[a.index])?
                            && !hush_attest::openpgp_revoked(&key)? =>
                    {
                        return Err(CliError::RevocationKept(fingerprint));
                    }
                    Some(a) => anchors.openpgp[a.index] = key,
                    None => anchors.openpgp.push(key),
                }
                added.push(json!({"openpgp": path.display().to_string()}));
            }
            if let Some(path) = x509 {
                for der in hush_attest::pem_certificates(&read_bytes(&path)?)? {
                    // The same authority twice is one anchor.
                    if !anchors.x509.contains(&der) {
                        anchors.x509.push(der);
                    }
                }
                added.push(json!({"x509": path.display().to_string()}));
            }
            save_anchors(&mut store, &anchors)?;
            let mut shown = listing(&anchors);
            shown.json["added"] = Value::from(added);
            out.show(&shown)
        }
        Ask::RemoveAnchor(id) => {
            let mut store = home.open_store()?;
            let mut anchors = anchors(&store)?;
            let listed = described(&anchors);
            let wanted: String = id
                .chars()
                .filter(|c| !c.is_whitespace() && *c != ':')
                .collect::<String>()
                .to_ascii_lowercase();
            let matching: Vec<&Described> = listed
                .iter()
                .filter(|a| a.id == wanted || (wanted.len() >= 8 && a.id.starts_with(&wanted)))
                .collect();
            let gone = match matching.as_slice() {
                [one] => (*one).clone(),
                [] => return Err(CliError::NoSuchAnchor(id)),
                _ => return Err(CliError::AmbiguousAnchor(id)),
            };
            match gone.kind {
                AnchorKind::OpenPgp => drop(anchors.openpgp.remove(gone.index)),
                AnchorKind::X509 => drop(anchors.x509.remove(gone.index)),
            }
            save_anchors(&mut store, &anchors)?;
            // What it vouched for stays as it is: the user decides about those devices.
            let mut still = Vec::new();
            for (jid, key) in store.keys_with_trust(Trust::Verified)? {
                if vouched_by(store.trust_source(&jid, &key)?.as_ref(), &gone) {
                    still.push(json!({"jid": jid, "fingerprint": key.fingerprint()}));
                }
            }
            let mut text = vec![format!(
                "no longer trusted to vouch: {} {} ({})",
                gone.kind.name(),
                gone.id,
                printable(&gone.name)
            )];
            if !still.is_empty() {
                text.push(format!(
                    "{} device(s) it vouched for stay verified (`hush devices` shows them as \
                     decided by it; `hush distrust JID DEVICE` refuses one)",
                    still.len()
                ));
            }
            out.show(&Shown {
                json: json!({"removed": gone.json(), "still_verified": still}),
                text,
            })
        }
        Ask::Anchors => {
            let store = home.open_store_to_read()?;
            out.show(&listing(&anchors(&store)?))
        }
        Ask::Check(jid) => check(home, &jid, out).await,
    }
}

fn own_statement(store: &SqliteStore) -> Result<Statement> {
    let account = account(store)?;
    Ok(Statement {
        jid: account.jid.clone(),
        device: account.device.device_id(),
        identity: *account.device.identity().public(),
    })
}

fn read_bytes(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| CliError::File {
        path: path.to_owned(),
        source,
    })
}

fn read_text(path: &std::path::Path) -> Result<String> {
    String::from_utf8(read_bytes(path)?).map_err(|_| CliError::NotText(path.to_owned()))
}

/// The two kinds of anchor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AnchorKind {
    OpenPgp,
    X509,
}

impl AnchorKind {
    fn name(self) -> &'static str {
        match self {
            AnchorKind::OpenPgp => "OpenPGP key",
            AnchorKind::X509 => "certification authority",
        }
    }
}

/// Whether a trust decision recorded as `source` was the vouching of `anchor`: by the
/// OpenPGP key's fingerprint, or the authority certificate's SHA-256; records written before
/// that was kept name the authority by its subject only.
fn vouched_by(source: Option<&TrustSource>, anchor: &Described) -> bool {
    match source {
        Some(TrustSource::OpenPgp { fingerprint, .. }) => {
            anchor.kind == AnchorKind::OpenPgp && *fingerprint == anchor.id
        }
        Some(TrustSource::X509 {
            anchor: subject,
            anchor_id,
            ..
        }) => {
            anchor.kind == AnchorKind::X509
                && match anchor_id {
                    Some(id) => *id == anchor.id,
                    None => *subject == anchor.name,
                }
        }
        _ => false,
    }
}

/// An anchor as the user is shown it.
#[derive(Clone, Debug)]
struct Described {
    kind: AnchorKind,
    /// Its place in its list.
    index: usize,
    /// What `--remove` takes: the OpenPGP fingerprint, or the certificate's SHA-256 (hex).
    id: String,
    /// The key's first user id, or the certificate's subject.
    name: String,
}

impl Described {
    fn json(&self) -> Value {
        let kind = match self.kind {
            AnchorKind::OpenPgp => "openpgp",
            AnchorKind::X509 => "x509",
        };
        json!({"kind": kind, "id": self.id, "name": self.name})
    }
}

/// Every anchor with its id and name (one that no longer parses is shown as such).
fn described(anchors: &Anchors) -> Vec<Described> {
    let openpgp = anchors.openpgp.iter().enumerate().map(|(index, key)| {
        let (id, name) = match hush_attest::openpgp_key(key) {
            Ok(hush_attest::VouchedBy::OpenPgp {
                fingerprint,
                user_id,
            }) => (fingerprint, user_id.unwrap_or_default()),
            _ => (String::new(), "(does not parse)".to_owned()),
        };
        Described {
            kind: AnchorKind::OpenPgp,
            index,
            id,
            name,
        }
    });
    let x509 = anchors.x509.iter().enumerate().map(|(index, der)| {
        let (name, id) = hush_attest::x509_anchor(der)
            .unwrap_or_else(|_| ("(does not parse)".to_owned(), String::new()));
        Described {
            kind: AnchorKind::X509,
            index,
            id,
            name,
        }
    });
    openpgp.chain(x509).collect()
}

/// `hush attest anchors`: each anchor, and how many of each kind.
fn listing(anchors: &Anchors) -> Shown {
    let listed = described(anchors);
    let mut text = vec![format!(
        "trusted to vouch for keys: {} OpenPGP key(s), {} certification authority(ies)",
        anchors.openpgp.len(),
        anchors.x509.len()
    )];
    text.extend(
        listed
            .iter()
            .map(|a| format!("  {} {}  {}", a.kind.name(), a.id, printable(&a.name))),
    );
    Shown {
        json: json!({"openpgp": anchors.openpgp.len(), "x509": anchors.x509.len(),
                     "anchors": listed.iter().map(Described::json).collect::<Vec<_>>()}),
        text,
    }
}

/// The anchors kept in the store.
fn anchors(store: &SqliteStore) -> Result<Anchors> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let list = |key: &str| -> Result<Vec<String>> {
        Ok(match store.setting(key)? {
            Some(text) => serde_json::from_str(&text).unwrap_or_default(),
            None => Vec::new(),
        })
    };
    Ok(Anchors {
        openpgp: list(OPENPGP_ANCHORS)?,
        x509: list(X509_ANCHORS)?
            .iter()
            .filter_map(|c| b64.decode(c).ok())
            .collect(),
    })
}

fn save_anchors(store: &mut SqliteStore, anchors: &Anchors) -> Result<()> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let openpgp = Value::from(anchors.openpgp.clone()).to_string();
    let x509 = Value::from(
        anchors
            .x509
            .iter()
            .map(|d| b64.encode(d))
            .collect::<Vec<_>>(),
    )
    .to_string();
    store.set_settings(&[(OPENPGP_ANCHORS, &openpgp), (X509_ANCHORS, &x509)])?;
    Ok(())
}

async fn publish(
    home: &Home,
    openpgp: Option<std::path::PathBuf>,
    x509_chain: Option<std::path::PathBuf>,
    x509_signature: Option<std::path::PathBuf>,
    out: Printer,
) -> Result<()> {
    let openpgp = openpgp
        .map(|p| read_text(&p).map(|signature| OpenPgp { signature }))
        .transpose()?;
    let x509 = match (x509_chain, x509_signature) {
        (Some(chain), Some(signature)) => Some(X509 {
            chain: hush_attest::pem_certificates(&read_bytes(&chain)?)?,
            signature: read_bytes(&signature)?,
        }),
        (None, None) => None,
        _ => return Err(CliError::AttestUsage),
    };
    if openpgp.is_none() && x509.is_none() {
        return Err(CliError::AttestUsage);
    }
    let (mut hush, _) = connect(home).await?;
    let statement = own_statement(hush.store())?;
    // The certificate's own signature must hold (its chain is the contacts' to judge).
    if let Some(x) = &x509 {
        let leaf_as_anchor = Anchors {
            openpgp: Vec::new(),
            x509: x.chain.first().cloned().into_iter().collect(),
        };
        let alone = X509 {
            chain: x.chain.first().cloned().into_iter().collect(),
            signature: x.signature.clone(),
        };
        alone.check(&statement, &leaf_as_anchor, super::unix_now() as i64)?;
    }
    let published = Published { openpgp, x509 };
    let done = hush.publish_attestations(&published).await;
    hush.close().await?;
    done?;
    out.show(&Shown {
        json: json!({"published": true, "device": statement.device,
                     "openpgp": published.openpgp.is_some(), "x509": published.x509.is_some()}),
        text: vec![format!(
            "published for device {}: {}",
            statement.device,
            [
                published.openpgp.as_ref().map(|_| "an OpenPGP signature"),
                published
                    .x509
                    .as_ref()
                    .map(|_| "an X.509 signature and chain"),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ")
        )],
    })
}

async fn check(home: &Home, jid: &BareJid, out: Printer) -> Result<()> {
    let (mut hush, _) = connect(home).await?;
    let result = check_on(&mut hush, jid).await;
    hush.close().await?;
    for shown in result? {
        out.show(&shown)?;
    }
    Ok(())
}

async fn check_on(hush: &mut hush_xmpp::Hush<SqliteStore>, jid: &BareJid) -> Result<Vec<Shown>> {
    let anchors = anchors(hush.store())?;
    if anchors.openpgp.is_empty() && anchors.x509.is_empty() {
        return Err(CliError::NoAnchors);
    }
    let now = super::unix_now() as i64;
    let mut shown = Vec::new();
    for device in hush.published_devices(jid).await? {
        // The key checked is the one we would encrypt to: our session's, else the bundle's.
        let identity = match super::trust::known_keys(hush.store(), jid.as_str())?
            .into_iter()
            .find(|(d, _)| *d == device)
        {
            Some((_, k)) => k,
            None => match hush.published_identity(jid, device).await {
                Ok(k) => {
                    hush.store_mut()
                        .save_published_key(jid.as_str(), device, &k, now as u64)?;
                    k
                }
                Err(e) => {
                    shown.push(line(jid, device, None, Err(e.to_string())));
                    continue;
                }
            },
        };
        let statement = Statement {
            jid: jid.to_string(),
            device,
            identity,
        };
        let published = match hush.attestations(jid, device).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                shown.push(line(
                    jid,
                    device,
                    Some(&identity),
                    Err("published no attestation".into()),
                ));
                continue;
            }
            Err(e) => {
                shown.push(line(jid, device, Some(&identity), Err(e.to_string())));
                continue;
            }
        };
        let attestations: Vec<&dyn Attestation> = [
            published.openpgp.as_ref().map(|a| a as &dyn Attestation),
            published.x509.as_ref().map(|a| a as &dyn Attestation),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut why_not = Vec::new();
        let mut vouched = None;
        for a in attestations {
            match a.check(&statement, &anchors, now) {
                Ok(by) => {
                    vouched = Some(by);
                    break;
                }
                Err(e) => why_not.push(format!("{}: {e}", a.kind())),
            }
        }
        let current = hush.store().trust(jid.as_str(), &identity)?;
        match vouched {
            // The user's refusal stands: an attestation does not overrule it.
            Some(by) if current == Some(Trust::Distrusted) => shown.push(line(
                jid,
                device,
                Some(&identity),
                Err(format!(
                    "vouched for by {by}, but you distrusted it; left distrusted (`hush trust` \
                     if you changed your mind)"
                )),
            )),
            Some(by) if current == Some(Trust::Verified) => {
                shown.push(line(jid, device, Some(&identity), Ok(by)))
            }
            Some(by) => {
                let source = match &by {
                    VouchedBy::OpenPgp {
                        fingerprint,
                        user_id,
                    } => TrustSource::OpenPgp {
                        fingerprint: fingerprint.clone(),
                        user_id: user_id.clone(),
                    },
                    VouchedBy::X509 {
                        subject,
                        anchor,
                        anchor_id,
                    } => TrustSource::X509 {
                        subject: subject.clone(),
                        anchor: anchor.clone(),
                        anchor_id: Some(anchor_id.clone()),
                    },
                };
                let decision = UserDecision {
                    jid: jid.to_string(),
                    identity,
                    trust: Trust::Verified,
                };
                hush.decide_trust_by(&[decision], source).await?;
                shown.push(line(jid, device, Some(&identity), Ok(by)));
            }
            None => shown.push(line(jid, device, Some(&identity), Err(why_not.join("; ")))),
        }
    }
    Ok(shown)
}

fn line(
    jid: &BareJid,
    device: u32,
    identity: Option<&hush_proto::IdentityKey>,
    outcome: std::result::Result<VouchedBy, String>,
) -> Shown {
    let fp = identity.map(|k| k.fingerprint());
    match outcome {
        Ok(by) => Shown {
            json: json!({"jid": jid.to_string(), "device": device, "fingerprint": fp,
                         "trust": "verified", "vouched_by": by.to_string()}),
            text: vec![format!(
                "{jid} device {device} ({}): verified, vouched for by {}",
                fp.as_deref().unwrap_or("?"),
                crate::terminal::printable(&by.to_string())
            )],
        },
        Err(why) => Shown {
            json: json!({"jid": jid.to_string(), "device": device, "fingerprint": fp,
                         "trust": null, "not_vouched": why}),
            text: vec![format!(
                "{jid} device {device} ({}): not vouched for ({})",
                fp.as_deref().unwrap_or("?"),
                crate::terminal::printable(&why)
            )],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x509(id: &str, subject: &str) -> Described {
        Described {
            kind: AnchorKind::X509,
            index: 0,
            id: id.to_owned(),
            name: subject.to_owned(),
        }
    }

    /// Two authorities with the same subject are told apart by their certificates' hashes;
    /// a record from before the hash was kept still matches by subject.
    #[test]
    fn what_an_anchor_vouched_for_is_matched_by_its_id() {
        let first = x509("aa11", "CN=Example CA");
        let second = x509("bb22", "CN=Example CA");
        let recorded = TrustSource::X509 {
            subject: "CN=alice".into(),
            anchor: "CN=Example CA".into(),
            anchor_id: Some("aa11".into()),
        };
        assert!(vouched_by(Some(&recorded), &first));
        assert!(!vouched_by(Some(&recorded), &second));
        let older = TrustSource::X509 {
            subject: "CN=alice".into(),
            anchor: "CN=Example CA".into(),
            anchor_id: None,
        };
        assert!(vouched_by(Some(&older), &first) && vouched_by(Some(&older), &second));
        let key = Described {
            kind: AnchorKind::OpenPgp,
            index: 0,
            id: "aa11".into(),
            name: "Bob".into(),
        };
        assert!(!vouched_by(Some(&recorded), &key), "kinds differ");
        assert!(!vouched_by(Some(&TrustSource::User), &first));
        assert!(!vouched_by(None, &first));
    }
}
