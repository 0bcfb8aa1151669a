//! A whole `<message/>` stanza as the server delivers it (live, as a Carbon, as an archive
//! result), classified as the client classifies it: who sent it, in which conversation, with
//! which ids and payload.
#![no_main]

use hush_xmpp::BareJid;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(tree) = hush_fuzz::xml(data) else {
        return;
    };
    let own: BareJid = hush_fuzz::BOB.parse().expect("valid");
    let _ = hush_xmpp::fuzzing::classify(&tree, &own, Some("q-1"));
    let _ = hush_xmpp::fuzzing::classify(&tree, &own, None);
});
