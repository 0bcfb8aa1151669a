//! A short authentication string message (`<sas xmlns='urn:hush:sas:0'/>`, decrypted SCE
//! content from the device being compared), then handed to a comparison in each of its states:
//! an initiator waiting for `accept` and for the key, a responder waiting for the key, both
//! sides done, and (fed twice) one that has failed. As sent and with the id of the exchange it
//! is fed to, so that it reaches the states behind the id check.
#![no_main]

use std::sync::OnceLock;

use hush_proto::sas::{Party, Sas, SasMessage};
use hush_proto::IdentityKeyPair;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(tree) = hush_fuzz::xml(data) else {
        return;
    };
    let _ = SasMessage::is(&tree);
    let Ok(message) = SasMessage::from_element(&tree) else {
        return;
    };
    // A message that parses serialises and parses back to the same message.
    let again = SasMessage::from_element(&message.to_element()).expect("round trip");
    assert_eq!(again, message);

    let mut rng = hush_fuzz::rng();
    let (alice, bob) = parties();
    for mut sas in comparisons(&mut rng) {
        for m in [message.clone(), with_id(&message, sas.id())] {
            for _ in 0..2 {
                if sas.receive(&m).is_err() {
                    // An error ends the exchange: no words after it.
                    assert!(sas.failure().is_some());
                    assert!(sas.code().is_none());
                }
            }
        }
    }
    // The id of a `start` that parses is one a responder takes.
    if let SasMessage::Start { id } = &message {
        let (mut sas, _) =
            Sas::accept(bob.clone(), alice.clone(), id, &mut rng).expect("a valid id");
        let _ = sas.receive(&message);
    }
});

/// Alice's and Bob's devices, with identity keys made once.
fn parties() -> &'static (Party, Party) {
    static PARTIES: OnceLock<(Party, Party)> = OnceLock::new();
    PARTIES.get_or_init(|| {
        let mut rng = hush_fuzz::rng();
        let mut party = |jid: &str, device| Party {
            jid: jid.into(),
            device,
            identity: *IdentityKeyPair::generate(&mut rng).public(),
        };
        let alice = party(hush_fuzz::ALICE, hush_fuzz::ALICE_DEVICE);
        let bob = party(hush_fuzz::BOB, hush_fuzz::BOB_DEVICE);
        (alice, bob)
    })
}

/// Comparisons between Alice (initiator) and Bob (responder) in each state an honest exchange
/// goes through: started, accepted, key sent, and done on both sides.
fn comparisons(rng: &mut rand::rngs::StdRng) -> Vec<Sas> {
    let (alice, bob) = parties();
    let (started, start) = Sas::start(alice.clone(), bob.clone(), rng);
    let (accepted, _) =
        Sas::accept(bob.clone(), alice.clone(), start.id(), rng).expect("our own id");
    let (mut key_sent, start) = Sas::start(alice.clone(), bob.clone(), rng);
    let (mut responder_done, accept) =
        Sas::accept(bob.clone(), alice.clone(), start.id(), rng).expect("our own id");
    let key_i = key_sent
        .receive(&accept)
        .expect("in order")
        .expect("a key to send");
    let _ = responder_done.receive(&key_i).expect("in order");
    let (mut initiator_done, start) = Sas::start(alice.clone(), bob.clone(), rng);
    let (mut r, accept) =
        Sas::accept(bob.clone(), alice.clone(), start.id(), rng).expect("our own id");
    let key_i = initiator_done
        .receive(&accept)
        .expect("in order")
        .expect("a key to send");
    let key_r = r.receive(&key_i).expect("in order").expect("a key to send");
    let _ = initiator_done
        .receive(&key_r)
        .expect("the key committed to");
    assert!(responder_done.code().is_some() && initiator_done.code().is_some());
    vec![started, accepted, key_sent, responder_done, initiator_done]
}

/// `message` as if it belonged to exchange `id`.
fn with_id(message: &SasMessage, id: &str) -> SasMessage {
    let id = id.to_owned();
    match message.clone() {
        SasMessage::Start { .. } => SasMessage::Start { id },
        SasMessage::Accept { commitment, .. } => SasMessage::Accept { id, commitment },
        SasMessage::Key { key, .. } => SasMessage::Key { id, key },
        SasMessage::Cancel { reason, .. } => SasMessage::Cancel { id, reason },
    }
}
