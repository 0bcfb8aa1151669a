//! The byte scanner that guards the XMPP stream before any parser sees it (stanza size and
//! depth), fed the input in pieces as the network would: the verdict may not depend on how
//! the bytes were split.
#![no_main]

use hush_xmpp::limits::{Scanner, SERVER_LIMITS};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let whole = {
        let mut s = Scanner::new(SERVER_LIMITS);
        let mut restart = false;
        s.feed(data, &mut restart).is_ok()
    };
    let split = {
        let mut s = Scanner::new(SERVER_LIMITS);
        let mut restart = false;
        data.chunks(7).all(|c| s.feed(c, &mut restart).is_ok())
    };
    assert_eq!(
        whole, split,
        "the verdict depends on how the bytes were split"
    );
});
