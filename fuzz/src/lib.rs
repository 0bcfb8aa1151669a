//! What the fuzz targets share: a fixed pair of devices with a working session (so ratchet
//! messages reach the decoders behind a session, not only the "no session" refusal), XML
//! parsing under stanza-sized limits, and the seeds every corpus starts from.
//!
//! Everything here is deterministic: the same bytes always take the same path.

#![forbid(unsafe_code)]

use std::sync::OnceLock;

use hush_proto::bounded_xml::{self, Limits};
use hush_proto::{
    sce, seal, DeviceEntry, DeviceList, Element, EncryptedElement, LocalDevice, Recipient, Session,
    Suite,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// The sender of the fixture's messages.
pub const ALICE: &str = "alice@example.org";
/// The reader, whose device the targets decrypt with.
pub const BOB: &str = "bob@example.net";
/// Alice's device.
pub const ALICE_DEVICE: u32 = 11;
/// Bob's device.
pub const BOB_DEVICE: u32 = 21;

/// Bob's device and his session with Alice's device, in each suite.
pub struct Fixture {
    /// Bob's keys.
    pub bob: LocalDevice,
    /// Bob's session with Alice's device, after reading her first message: OMEMO:2, legacy.
    pub sessions: [Session; 2],
    /// What the seeds are made of.
    pub seeds: Seeds,
}

/// Real inputs of each parser, made by the fixture.
pub struct Seeds {
    /// `<encrypted/>` elements as sent (both suites; a key exchange and a message after it).
    pub elements: Vec<Vec<u8>>,
    /// The key entries of those elements (the ratchet and key-exchange wire formats).
    pub key_entries: Vec<Vec<u8>>,
    /// An SCE envelope.
    pub envelopes: Vec<Vec<u8>>,
    /// Bob's bundle and device list, in both suites.
    pub bundles: Vec<Vec<u8>>,
    /// A stored session and a stored device.
    pub records: Vec<Vec<u8>>,
    /// Whole `<message/>` stanzas: as sent, as a Carbon, as an archive result.
    pub stanzas: Vec<Vec<u8>>,
}

/// A seeded RNG: the same input always takes the same path.
pub fn rng() -> StdRng {
    StdRng::seed_from_u64(0x6875_7368)
}

/// The limits a stanza is parsed under here (the client's stream limits allow 1 MiB, depth 64).
pub const STANZA_LIMITS: Limits = Limits {
    max_bytes: 1 << 20,
    max_depth: 64,
    max_elements: 10_000,
    max_attributes: 40_000,
    max_text_nodes: 10_000,
};

/// `bytes` parsed as one XML element under [`STANZA_LIMITS`], if they are one.
pub fn xml(bytes: &[u8]) -> Option<Element> {
    bounded_xml::parse(bytes, &STANZA_LIMITS).ok()
}

/// The fixture, built once.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build)
}

fn build() -> Fixture {
    let mut rng = rng();
    let alice = LocalDevice::generate(ALICE_DEVICE, 3, 0, &mut rng).expect("device");
    let bob = LocalDevice::generate(BOB_DEVICE, 3, 0, &mut rng).expect("device");
    let mut seeds = Seeds {
        elements: Vec::new(),
        key_entries: Vec::new(),
        envelopes: Vec::new(),
        bundles: Vec::new(),
        records: vec![bob.to_bytes().to_vec()],
        stanzas: Vec::new(),
    };
    let mut sessions = Vec::new();
    for suite in [Suite::Omemo2, Suite::Legacy] {
        let bundle = bob.bundle(suite);
        seeds
            .bundles
            .push(String::from(&bundle.to_element()).into_bytes());
        let list = DeviceList {
            suite,
            devices: vec![DeviceEntry::new(BOB_DEVICE)],
        };
        seeds
            .bundles
            .push(String::from(&list.to_element()).into_bytes());
        let mut theirs = Session::initiate(alice.identity(), &bundle, &mut rng).expect("session");
        let mut ours = None;
        for text in ["hello", "again"] {
            let payload = if suite == Suite::Omemo2 {
                let env = sce::seal(
                    &[sce::body(text)],
                    ALICE,
                    BOB,
                    Some(1_700_000_000),
                    &mut rng,
                )
                .expect("envelope");
                seeds.envelopes.push(env.clone());
                env
            } else {
                text.as_bytes().to_vec()
            };
            let element = seal(
                suite,
                ALICE_DEVICE,
                Some(&payload),
                &mut [Recipient {
                    jid: BOB,
                    device_id: BOB_DEVICE,
                    session: &mut theirs,
                }],
                &mut rng,
            )
            .expect("sealed");
            let xml = String::from(&element.to_element());
            seeds
                .key_entries
                .extend(element.keys.iter().map(|k| k.data.clone()));
            seeds.stanzas.push(stanzas(&xml));
            seeds.elements.push(xml.into_bytes());
            let opened = bob
                .open(&element, BOB, ALICE, ours.take(), &mut rng)
                .expect("Bob reads Alice");
            ours = Some(opened.session);
        }
        let ours = ours.expect("read");
        seeds.records.push(ours.to_bytes().to_vec());
        sessions.push(ours);
    }
    let legacy = sessions.pop().expect("the legacy session");
    let omemo2 = sessions.pop().expect("the OMEMO:2 session");
    Fixture {
        bob,
        sessions: [omemo2, legacy],
        seeds,
    }
}

/// The shapes a message with `encrypted` arrives in: as sent, as a Carbon of what another of
/// our devices received, and as an archive result.
fn stanzas(encrypted: &str) -> Vec<u8> {
    let message = format!(
        "<message xmlns='jabber:client' from='{ALICE}/phone' to='{BOB}' type='chat' id='o-1'>\
         <body>encrypted</body><origin-id xmlns='urn:xmpp:sid:0' id='o-1'/>\
         <stanza-id xmlns='urn:xmpp:sid:0' by='{BOB}' id='s-1'/>{encrypted}\
         <store xmlns='urn:xmpp:hints'/></message>"
    );
    let carbon = format!(
        "<message xmlns='jabber:client' from='{BOB}' to='{BOB}/laptop'>\
         <received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
         {message}</forwarded></received></message>"
    );
    let archived = format!(
        "<message xmlns='jabber:client' from='{BOB}' to='{BOB}/laptop'>\
         <result xmlns='urn:xmpp:mam:2' queryid='q-1' id='a-1'><forwarded xmlns='urn:xmpp:forward:0'>\
         <delay xmlns='urn:xmpp:delay' stamp='2026-12-05T10:00:00Z'/>{message}</forwarded></result></message>"
    );
    format!("{message}\n{carbon}\n{archived}").into_bytes()
}

/// The seeds of one target, by its name.
pub fn seeds_of(target: &str) -> Vec<Vec<u8>> {
    let s = &fixture().seeds;
    match target {
        "xml_payload" => s.envelopes.iter().chain(&s.elements).cloned().collect(),
        "encrypted_element" => s.elements.clone(),
        "key_entry" => s
            .key_entries
            .iter()
            .enumerate()
            // The first byte picks the suite and whether the entry is a key exchange.
            .map(|(i, k)| {
                let mut v = vec![i as u8 % 4];
                v.extend_from_slice(k);
                v
            })
            .collect(),
        "sce_envelope" => s.envelopes.clone(),
        "bundle" => s.bundles.clone(),
        "stored_records" => s
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut v = vec![u8::from(i > 0)];
                v.extend_from_slice(r);
                v
            })
            .collect(),
        "stream_scanner" => s
            .stanzas
            .iter()
            .map(|m| {
                let mut v = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
                    xmlns:stream='http://etherx.jabber.org/streams' from='example.net' id='x' \
                    version='1.0'>"
                    .to_vec();
                v.extend_from_slice(m);
                v
            })
            .collect(),
        "stanza" => s
            .stanzas
            .iter()
            .flat_map(|m| {
                m.split(|b| *b == b'\n')
                    .map(<[u8]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .collect(),
        "shared_file" => shared_file_seeds(),
        "trust_message" => vec![trust_message_seed()],
        "sas_message" => sas_message_seeds(),
        _ => Vec::new(),
    }
}

/// What a received file brings: an `aesgcm://` link, a `<file-sharing/>` element, and a file
/// sealed under the key the target opens with (the first byte picks which is read).
fn shared_file_seeds() -> Vec<Vec<u8>> {
    let key = hush_files::FileKey::from_parts([7; 32], hush_files::Iv::Standard([9; 12]));
    let link = hush_files::Link::new("https://upload.example.org/a/b/photo.jpg", key.clone())
        .expect("a valid https URL");
    let share = hush_files::SharedFile {
        link: link.clone(),
        name: Some("photo.jpg".into()),
        media_type: Some("image/jpeg".into()),
        size: Some(1000),
        sha256: Some([3; 32]),
    };
    let mut sealed = Vec::new();
    let mut sealer = hush_files::Sealer::new(&key).expect("a key");
    sealer
        .update(b"the contents of a small shared file", &mut sealed)
        .expect("small");
    sealer.finish(&mut sealed).expect("small");
    let with = |kind: u8, bytes: &[u8]| {
        let mut v = vec![kind];
        v.extend_from_slice(bytes);
        v
    };
    vec![
        with(0, link.to_aesgcm().as_bytes()),
        with(1, String::from(&share.to_element()).as_bytes()),
        with(2, &sealed),
    ]
}

/// A trust message (XEP-0434) naming two accounts, with keys vouched for and refused.
fn trust_message_seed() -> Vec<u8> {
    use hush_engine::trust_message::{KeyOwner, TrustMessage};
    let mut rng = rng();
    let mut key = || *hush_proto::IdentityKeyPair::generate(&mut rng).public();
    let message = TrustMessage {
        owners: vec![
            KeyOwner {
                jid: ALICE.into(),
                trust: vec![key(), key()],
                distrust: vec![],
            },
            KeyOwner {
                jid: BOB.into(),
                trust: vec![key()],
                distrust: vec![key()],
            },
        ],
    };
    String::from(&message.to_element()).into_bytes()
}

/// The messages of a real comparison of short authentication strings, and a cancel.
fn sas_message_seeds() -> Vec<Vec<u8>> {
    use hush_proto::sas::{Party, Sas, SasMessage};
    let mut rng = rng();
    let mut party = |jid: &str, device| Party {
        jid: jid.into(),
        device,
        identity: *hush_proto::IdentityKeyPair::generate(&mut rng).public(),
    };
    let (alice, bob) = (party(ALICE, ALICE_DEVICE), party(BOB, BOB_DEVICE));
    let mut rng = self::rng();
    let (mut i, start) = Sas::start(alice.clone(), bob.clone(), &mut rng);
    let mut messages = vec![start.clone()];
    if let Ok((mut r, accept)) = Sas::accept(bob, alice, start.id(), &mut rng) {
        messages.push(accept.clone());
        if let Ok(Some(key)) = i.receive(&accept) {
            messages.push(key.clone());
            if let Ok(Some(reply)) = r.receive(&key) {
                messages.push(reply);
            }
        }
    }
    messages.push(SasMessage::Cancel {
        id: start.id().to_owned(),
        reason: "mismatch".into(),
    });
    messages
        .iter()
        .map(|m| String::from(&m.to_element()).into_bytes())
        .collect()
}

/// The targets, in the order `scripts/fuzz` runs them.
pub const TARGETS: [&str; 11] = [
    "xml_payload",
    "encrypted_element",
    "key_entry",
    "sce_envelope",
    "bundle",
    "stored_records",
    "stream_scanner",
    "stanza",
    "shared_file",
    "trust_message",
    "sas_message",
];

/// What the session of `suite` is, for a target to decrypt with.
pub fn session(suite: Suite) -> Session {
    let f = fixture();
    if suite == Suite::Omemo2 {
        f.sessions[0].clone()
    } else {
        f.sessions[1].clone()
    }
}

/// Decrypts `element` as Bob, with no session and with his session with Alice: whatever it
/// holds, this must return (an error is fine), never panic or hang.
pub fn open_both_ways(element: &EncryptedElement) {
    let f = fixture();
    let mut rng = rng();
    let _ = f.bob.key_exchange_identity(element, BOB);
    let _ = f.bob.key_exchange_base_key(element, BOB);
    let _ = element.digest_for(BOB, BOB_DEVICE, ALICE);
    let _ = f.bob.open(element, BOB, ALICE, None, &mut rng);
    if let Ok(opened) = f
        .bob
        .open(element, BOB, ALICE, Some(session(element.suite)), &mut rng)
    {
        let _ = opened.envelope(sce::Expect {
            from: ALICE,
            to: BOB,
            require_to: false,
        });
    }
}
