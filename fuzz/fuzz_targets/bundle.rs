//! Bundles and device lists as a PEP service delivers them, in both suites.
#![no_main]

use hush_proto::{Bundle, DeviceList};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(tree) = hush_fuzz::xml(data) else {
        return;
    };
    if let Ok(bundle) = Bundle::from_element(&tree, 1) {
        let _ = bundle.verify();
        // A parsed bundle serialises and parses back to the same keys.
        let again = Bundle::from_element(&bundle.to_element(), 1).expect("round trip");
        assert_eq!(again.identity.fingerprint(), bundle.identity.fingerprint());
        assert_eq!(again.prekeys, bundle.prekeys);
    }
    if let Ok(list) = DeviceList::from_element(&tree) {
        let _ = DeviceList::from_element(&list.to_element()).expect("round trip");
    }
});
