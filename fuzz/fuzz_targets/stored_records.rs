//! What the store keeps on disk and decodes on every start: a session record (first byte odd)
//! or this device's keys (even). A corrupt record is an error, never a panic; a record that
//! decodes encodes to one that decodes again.
#![no_main]

use hush_proto::{LocalDevice, Session};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&which, record)) = data.split_first() else {
        return;
    };
    if which & 1 == 1 {
        if let Ok(session) = Session::from_bytes(record) {
            Session::from_bytes(&session.to_bytes()).expect("round trip");
        }
    } else if let Ok(device) = LocalDevice::from_bytes(record) {
        LocalDevice::from_bytes(&device.to_bytes()).expect("round trip");
    }
});
