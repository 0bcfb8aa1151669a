//! A decrypted payload read as an SCE envelope (XEP-0420), and its timestamp.
#![no_main]

use hush_proto::sce;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let expect = sce::Expect {
        from: hush_fuzz::ALICE,
        to: hush_fuzz::BOB,
        require_to: false,
    };
    let _ = sce::open(data, expect);
    let _ = sce::stamp(data);
    if let Ok(s) = core::str::from_utf8(data) {
        let _ = hush_wire::date::parse(s);
    }
});
