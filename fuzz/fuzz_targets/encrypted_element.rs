//! An `<encrypted/>` element as the network delivers it: parsed, then decrypted by a device
//! with and without a session with the claimed sender.
#![no_main]

use hush_proto::EncryptedElement;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(tree) = hush_fuzz::xml(data) else {
        return;
    };
    if let Ok(element) = EncryptedElement::from_element(&tree) {
        // What parsed serialises and parses back to the same element.
        let again = EncryptedElement::from_element(&element.to_element());
        assert_eq!(again.as_ref().ok(), Some(&element));
        hush_fuzz::open_both_ways(&element);
    }
});
