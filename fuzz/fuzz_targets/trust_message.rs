//! A XEP-0434 trust message (`<trust-message/>`) as decrypted SCE content brings it, read as
//! Automatic Trust Management (XEP-0450) reads it: ATM usage over OMEMO 2 identity keys.
#![no_main]

use hush_engine::trust_message::TrustMessage;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(tree) = hush_fuzz::xml(data) else {
        return;
    };
    let _ = TrustMessage::is(&tree);
    if let Ok(message) = TrustMessage::from_element(&tree) {
        // What is applied names at least one key.
        assert!(message.key_count() >= 1);
        // A message that parses serialises and parses back to the same message.
        let again = TrustMessage::from_element(&message.to_element()).expect("round trip");
        assert_eq!(again, message);
    }
});
