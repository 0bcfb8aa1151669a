//! Times the operations `scripts/bench-vs-python` compares with python-omemo, with the same
//! simple loop the Python side uses, and prints `{"op": nanoseconds per operation, ...}`.
//! The criterion benches (`cargo bench`) are the precise numbers; this is for the side-by-side.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use hush_proto::hazmat;
use hush_proto::{seal, IdentityKeyPair, LocalDevice, Recipient, Session, Suite};
use rand::rngs::StdRng;

use hush_test_support::fixtures::{self, Established, KeyExchange};

fn time(mut op: impl FnMut()) -> f64 {
    // Warm up, then five rounds of at least 60 ms and 3 iterations each; the fastest round
    // counts (what the machine does when nothing else runs: on a shared machine the others
    // only add noise). The Python side does the same.
    for _ in 0..5 {
        op();
    }
    (0..5)
        .map(|_| {
            let start = Instant::now();
            let mut n = 0u32;
            while n < 3 || start.elapsed() < Duration::from_millis(60) {
                op();
                n += 1;
            }
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// One OMEMO:2 message of 100 bytes from Alice's device (id 1) to `recipients`.
fn seal_100(recipients: &mut [Recipient<'_>], rng: &mut StdRng) -> hush_proto::EncryptedElement {
    seal(Suite::Omemo2, 1, Some(&[0x42; 100]), recipients, rng).unwrap()
}

/// Alice's device (id 1) with a confirmed session to each of `devices` devices of `members`
/// accounts: what a room message to them is encrypted on. `(jid, device id, session)`, and the
/// RNG to go on with.
fn room_sessions(members: u32, devices: u32) -> (Vec<(String, u32, Session)>, StdRng) {
    let mut rng = fixtures::rng(13);
    let alice = LocalDevice::generate(1, 1, 0, &mut rng).unwrap();
    let mut sessions = Vec::new();
    for m in 0..members {
        let jid = format!("member{m}@example.net");
        for n in 0..devices {
            let device = LocalDevice::generate(100 + devices * m + n, 1, 0, &mut rng).unwrap();
            let id = device.device_id();
            let bundle = device.bundle(Suite::Omemo2);
            let mut to = Session::initiate(alice.identity(), &bundle, &mut rng).unwrap();
            let recipient = Recipient {
                jid: &jid,
                device_id: id,
                session: &mut to,
            };
            let first = seal(Suite::Omemo2, 1, Some(b"hi"), &mut [recipient], &mut rng).unwrap();
            let mut back = device
                .open(&first, &jid, fixtures::ALICE, None, &mut rng)
                .unwrap()
                .session;
            // The empty message that answers the key exchange, read by Alice.
            let recipient = Recipient {
                jid: fixtures::ALICE,
                device_id: 1,
                session: &mut back,
            };
            let answer = seal(Suite::Omemo2, id, None, &mut [recipient], &mut rng).unwrap();
            let to = alice
                .open(&answer, fixtures::ALICE, &jid, Some(to), &mut rng)
                .unwrap()
                .session;
            assert!(to.is_confirmed());
            sessions.push((jid.clone(), id, to));
        }
    }
    (sessions, rng)
}

fn main() {
    let mut out = serde_json::Map::new();
    let mut put = |name: &str, ns: f64| {
        out.insert(name.to_owned(), serde_json::json!(ns));
    };
    let id = IdentityKeyPair::from_secret([7; 32]);
    let mut rng = fixtures::rng(1);
    let msg = [5u8; 33];
    let sig = id.sign(&msg, &mut rng);
    let curve = id.public().curve25519();
    put(
        "xeddsa_sign",
        time(|| {
            black_box(id.sign(black_box(&msg), &mut rng));
        }),
    );
    put(
        "xeddsa_verify",
        time(|| assert!(hazmat::verify_with_curve_key(&curve, black_box(&msg), &sig))),
    );

    // The primitives, against OpenSSL's on the Python side.
    let ours = hush_proto::KeyPair::from_secret([0x41; 32]);
    let theirs = hush_proto::KeyPair::from_secret([0x17; 32]).public();
    put(
        "x25519",
        time(|| {
            black_box(hazmat::x25519(&ours, black_box(&theirs)).unwrap());
        }),
    );
    put(
        "x25519_public",
        time(|| {
            black_box(hush_proto::KeyPair::from_secret(black_box([0x41; 32])).public());
        }),
    );
    let ed = id.public().ed25519();
    let ed_sig = hazmat::xeddsa_sign(hazmat::identity_secret(&id), &msg, &[3; 64]);
    put(
        "ed25519_verify",
        time(|| assert!(hazmat::verify_ed25519(&ed, black_box(&msg), &ed_sig))),
    );

    let mut kx = KeyExchange::new(Suite::Omemo2);
    put(
        "x3dh_active",
        time(|| {
            black_box(kx.agree_active());
        }),
    );
    put(
        "x3dh_passive",
        time(|| {
            black_box(kx.agree_passive());
        }),
    );
    put(
        "session_active",
        time(|| {
            black_box(kx.initiate());
        }),
    );
    let first = kx.initiate();
    put(
        "session_passive",
        time(|| {
            black_box(kx.accept(&first));
        }),
    );

    for (suite, name) in [
        (Suite::Omemo2, "message_omemo2"),
        (Suite::Legacy, "message_legacy"),
    ] {
        let mut est = Established::new(suite, 1);
        put(
            name,
            time(|| {
                black_box(est.round_trip(&[0x42; 100]));
            }),
        );
    }
    for n in [1usize, 10, 100] {
        let mut est = Established::new(Suite::Omemo2, n);
        put(
            &format!("fanout_{n}"),
            time(|| {
                black_box(est.seal_all(&[0x42; 100]));
            }),
        );
    }
    // The first message to n devices never written to: each bundle's signature checked,
    // X3DH and a ratchet started for each (all at once, on every core, as the engine does),
    // one payload and n key wraps.
    for n in [1u32, 10, 100] {
        let mut rng = fixtures::rng(21);
        let alice = LocalDevice::generate(1, 1, 0, &mut rng).unwrap();
        let bundles: Vec<_> = (0..n)
            .map(|i| {
                LocalDevice::generate(100 + i, 1, 0, &mut rng)
                    .unwrap()
                    .bundle(Suite::Omemo2)
            })
            .collect();
        put(
            &format!("first_message_{n}"),
            time(|| {
                let refs: Vec<_> = bundles.iter().collect();
                let mut sessions: Vec<(u32, Session)> = (100..)
                    .zip(Session::initiate_all(alice.identity(), &refs, &mut rng))
                    .map(|(id, s)| (id, s.unwrap()))
                    .collect();
                let mut recipients: Vec<Recipient<'_>> = sessions
                    .iter_mut()
                    .map(|(id, session)| Recipient {
                        jid: fixtures::BOB,
                        device_id: *id,
                        session,
                    })
                    .collect();
                black_box(seal_100(&mut recipients, &mut rng));
            }),
        );
    }
    // One room message: 50 members with 3 devices each, one payload and 150 key wraps.
    let (mut sessions, mut rng) = room_sessions(50, 3);
    put(
        "room_150",
        time(|| {
            let mut recipients: Vec<Recipient<'_>> = sessions
                .iter_mut()
                .map(|(jid, device_id, session)| Recipient {
                    jid,
                    device_id: *device_id,
                    session,
                })
                .collect();
            black_box(seal_100(&mut recipients, &mut rng));
        }),
    );
    println!("{}", serde_json::Value::Object(out));
}
