//! What a shared file brings from another client or a server: an `aesgcm://` link (a message
//! body), a `<file-sharing/>` element (XEP-0447/0448, decrypted SCE content), and the
//! downloaded ciphertext itself, opened in pieces. The first byte picks which.
#![no_main]

use hush_files::{FileKey, Iv, Link, Opener, SharedFile};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    match kind % 3 {
        0 => {
            if let Ok(link) = Link::parse(&String::from_utf8_lossy(rest)) {
                assert!(link.url.starts_with("https://"));
                // A link that parses writes itself back to the same link.
                let again = Link::parse(&link.to_aesgcm()).expect("round trip");
                assert_eq!(again, link);
            }
        }
        1 => {
            let Some(tree) = hush_fuzz::xml(rest) else {
                return;
            };
            if let Ok(share) = SharedFile::from_element(&tree) {
                assert!(share.link.url.starts_with("https://"));
                let again = SharedFile::from_element(&share.to_element()).expect("round trip");
                assert_eq!(again, share);
            }
        }
        _ => {
            // The key of the seeds, so that the real ciphertext among them opens.
            let key = FileKey::from_parts([7; 32], Iv::Standard([9; 12]));
            let mut opener = Opener::new(&key).expect("a key");
            let mut out = Vec::new();
            // Pieces of the sizes the bytes themselves say, as a network delivers them.
            let mut at = 0;
            while at < rest.len() {
                let step = 1 + usize::from(rest[at]) % 64;
                let end = (at + step).min(rest.len());
                opener
                    .update(&rest[at..end], &mut out)
                    .expect("within the size limit");
                at = end;
            }
            let released = out.len();
            match opener.finish(&mut out) {
                Ok(()) => assert!(out.len() + 16 == rest.len()),
                Err(_) => assert_eq!(out.len(), released, "nothing more after a failed tag"),
            }
        }
    }
});
