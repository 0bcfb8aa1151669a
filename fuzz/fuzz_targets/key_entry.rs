//! The bytes of one `<key/>`: the ratchet message and key-exchange wire formats (protobuf) of
//! both suites, decoded and decrypted behind a working session. The first byte picks the suite
//! and whether the entry claims to be a key exchange; the rest is the entry.
#![no_main]

use hush_proto::{EncryptedElement, KeyEntry, Suite};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&selector, entry)) = data.split_first() else {
        return;
    };
    let suite = if selector & 1 == 0 {
        Suite::Omemo2
    } else {
        Suite::Legacy
    };
    let element = EncryptedElement {
        suite,
        sid: hush_fuzz::ALICE_DEVICE,
        keys: vec![KeyEntry {
            jid: Some(hush_fuzz::BOB.to_owned()),
            rid: hush_fuzz::BOB_DEVICE,
            kex: selector & 2 != 0,
            data: entry.to_vec(),
        }],
        iv: (suite == Suite::Legacy).then(|| vec![0; 12]),
        payload: Some(vec![0; 32]),
    };
    hush_fuzz::open_both_ways(&element);
});
