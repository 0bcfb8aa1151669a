//! The `<file-sharing/>` element of Stateless File Sharing (XEP-0447) with an encrypted
//! source (XEP-0448) and the file's metadata (XEP-0446):
//!
//! ```xml
//! <file-sharing xmlns='urn:xmpp:sfs:0'>
//!   <file xmlns='urn:xmpp:file:metadata:0'>
//!     <media-type>image/jpeg</media-type> <name>summit.jpg</name> <size>3032449</size>
//!     <hash xmlns='urn:xmpp:hashes:2' algo='sha-256'>base64</hash>
//!   </file>
//!   <sources>
//!     <encrypted xmlns='urn:xmpp:esfs:0' cipher='urn:xmpp:ciphers:aes-256-gcm-nopadding:0'>
//!       <key>base64</key> <iv>base64</iv>
//!       <sources xmlns='urn:xmpp:sfs:0'>
//!         <url-data xmlns='http://jabber.org/protocol/url-data' target='https://…'/>
//!       </sources>
//!     </encrypted>
//!   </sources>
//! </file-sharing>
//! ```
//!
//! It holds the key, the name and the hash, so it only ever travels inside an OMEMO:2 SCE
//! envelope; legacy OMEMO encrypts the body alone, which carries the `aesgcm://` link.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use minidom::Element;
use zeroize::Zeroizing;

use crate::error::FileError;
use crate::key::{FileKey, Iv, Link};

/// XEP-0447's namespace.
pub const NS_SFS: &str = "urn:xmpp:sfs:0";
/// XEP-0446's namespace.
pub(crate) const NS_METADATA: &str = "urn:xmpp:file:metadata:0";
/// XEP-0448's namespace.
pub const NS_ESFS: &str = "urn:xmpp:esfs:0";
/// XEP-0300's namespace.
pub(crate) const NS_HASHES: &str = "urn:xmpp:hashes:2";
/// XEP-0103's namespace (a URL source).
pub(crate) const NS_URL_DATA: &str = "http://jabber.org/protocol/url-data";
/// The cipher we use and accept: AES-256-GCM with the tag appended.
pub const CIPHER_AES_256_GCM: &str = "urn:xmpp:ciphers:aes-256-gcm-nopadding:0";

/// The longest file name kept from a sender; longer ones are cut.
pub(crate) const MAX_NAME: usize = 255;
/// The longest media type kept.
const MAX_MEDIA_TYPE: usize = 127;

/// An encrypted file someone shares: where it is, its key, and what its sender said of it.
/// Name, type, size and hash are the sender's claims; the download checks size and hash.
#[derive(Clone, PartialEq)]
pub struct SharedFile {
    /// Where the ciphertext is, and its key.
    pub link: Link,
    /// The file's name as the sender gave it (not yet safe as a path: see
    /// [`crate::safe_file_name`]).
    pub name: Option<String>,
    /// Its media type, e.g. `image/jpeg`.
    pub media_type: Option<String>,
    /// The plaintext's size in bytes.
    pub size: Option<u64>,
    /// The SHA-256 of the plaintext.
    pub sha256: Option<[u8; 32]>,
}

impl std::fmt::Debug for SharedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedFile")
            .field("link", &self.link)
            .field("name", &self.name)
            .field("media_type", &self.media_type)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl SharedFile {
    /// A file known only by its link (what a legacy OMEMO message carries).
    pub fn from_link(link: Link) -> Self {
        Self {
            link,
            name: None,
            media_type: None,
            size: None,
            sha256: None,
        }
    }

    /// The `<file-sharing/>` element. Holds the key: encrypt it, never send it in clear.
    pub fn to_element(&self) -> Element {
        let mut file = Element::builder("file", NS_METADATA);
        if let Some(media_type) = &self.media_type {
            file = file.append(text_child("media-type", NS_METADATA, media_type));
        }
        if let Some(name) = &self.name {
            file = file.append(text_child("name", NS_METADATA, name));
        }
        if let Some(size) = self.size {
            file = file.append(text_child("size", NS_METADATA, &size.to_string()));
        }
        if let Some(hash) = &self.sha256 {
            file = file.append(
                Element::builder("hash", NS_HASHES)
                    .attr(attr_name("algo"), "sha-256")
                    .append(STANDARD.encode(hash))
                    .build(),
            );
        }
        let key = Zeroizing::new(STANDARD.encode(self.link.key.secret_bytes()));
        let encrypted = Element::builder("encrypted", NS_ESFS)
            .attr(attr_name("cipher"), CIPHER_AES_256_GCM)
            .append(text_child("key", NS_ESFS, &key))
            .append(text_child(
                "iv",
                NS_ESFS,
                &STANDARD.encode(self.link.key.iv().as_bytes()),
            ))
            .append(
                Element::builder("sources", NS_SFS)
                    .append(
                        Element::builder("url-data", NS_URL_DATA)
                            .attr(attr_name("target"), self.link.url.as_str())
                            .build(),
                    )
                    .build(),
            )
            .build();
        Element::builder("file-sharing", NS_SFS)
            .append(file.build())
            .append(
                Element::builder("sources", NS_SFS)
                    .append(encrypted)
                    .build(),
            )
            .build()
    }

    /// Reads a `<file-sharing/>` element: the first encrypted source we can use (AES-256-GCM
    /// with an `https://` URL), with the metadata. A share without one is refused.
    pub fn from_element(element: &Element) -> Result<Self, FileError> {
        if !element.is("file-sharing", NS_SFS) {
            return Err(FileError::BadShare("not a file-sharing element"));
        }
        let sources = element
            .get_child("sources", NS_SFS)
            .ok_or(FileError::BadShare("no sources"))?;
        let mut found = None;
        for encrypted in sources.children().filter(|c| c.is("encrypted", NS_ESFS)) {
            if encrypted.attr("cipher") != Some(CIPHER_AES_256_GCM) {
                continue;
            }
            let Some(key) = decode_child(encrypted, "key") else {
                continue;
            };
            let Some(iv) = decode_child(encrypted, "iv") else {
                continue;
            };
            let Ok(key) = <[u8; 32]>::try_from(key.as_slice()) else {
                continue;
            };
            let iv = match iv.len() {
                12 => Iv::Standard(iv.as_slice().try_into().unwrap_or([0; 12])),
                16 => Iv::Long(iv.as_slice().try_into().unwrap_or([0; 16])),
                _ => continue,
            };
            let urls = encrypted
                .get_child("sources", NS_SFS)
                .into_iter()
                .flat_map(|s| s.children())
                .filter(|c| c.is("url-data", NS_URL_DATA))
                .filter_map(|c| c.attr("target"));
            for url in urls {
                if let Ok(link) = Link::new(url, FileKey::from_parts(key, iv.clone())) {
                    found = Some(link);
                    break;
                }
            }
            if found.is_some() {
                break;
            }
        }
        let link = found.ok_or(FileError::BadShare(
            "no AES-256-GCM source with an https:// URL",
        ))?;
        let file = element.get_child("file", NS_METADATA);
        let text = |name: &str, max: usize| -> Option<String> {
            let value = file?.get_child(name, NS_METADATA)?.text();
            let value = value.trim();
            (!value.is_empty()).then(|| value.chars().take(max).collect())
        };
        let sha256 = file
            .into_iter()
            .flat_map(|f| f.children())
            .filter(|c| c.is("hash", NS_HASHES) && c.attr("algo") == Some("sha-256"))
            .find_map(|c| {
                let bytes = decode_text(&c.text())?;
                <[u8; 32]>::try_from(bytes.as_slice()).ok()
            });
        Ok(Self {
            link,
            name: text("name", MAX_NAME),
            media_type: text("media-type", MAX_MEDIA_TYPE),
            size: text("size", 20).and_then(|s| s.parse().ok()),
            sha256,
        })
    }
}

fn text_child(name: &str, ns: &str, text: &str) -> Element {
    Element::builder(name, ns).append(text).build()
}

fn decode_text(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(compact.as_bytes()).ok().map(Zeroizing::new)
}

fn decode_child(parent: &Element, name: &str) -> Option<Zeroizing<Vec<u8>>> {
    decode_text(&parent.get_child(name, NS_ESFS)?.text())
}

/// An attribute name for minidom's builder; all ours are static, valid NCNames.
#[expect(
    clippy::expect_used,
    reason = "attribute names in this crate are static, valid NCNames"
)]
fn attr_name(name: &'static str) -> minidom::rxml::NcName {
    minidom::rxml::NcName::try_from(name).expect("attribute names in this crate are valid NCNames")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SharedFile {
        SharedFile {
            link: Link::new(
                "https://up.example/slot/x.jpg",
                FileKey::from_parts([3; 32], Iv::Standard([4; 12])),
            )
            .unwrap(),
            name: Some("summit.jpg".into()),
            media_type: Some("image/jpeg".into()),
            size: Some(3_032_449),
            sha256: Some([9; 32]),
        }
    }

    #[test]
    fn a_share_round_trips() {
        let share = sample();
        let element = share.to_element();
        assert_eq!(SharedFile::from_element(&element).unwrap(), share);
        let xml = String::from(&element);
        assert!(xml.contains(CIPHER_AES_256_GCM), "{xml}");
        assert!(xml.contains("url-data"), "{xml}");
    }

    #[test]
    fn the_example_of_xep_0448_is_read() {
        let xml = "<file-sharing xmlns='urn:xmpp:sfs:0'>\
            <file xmlns='urn:xmpp:file:metadata:0'><media-type>image/jpeg</media-type>\
            <name>summit.jpg</name><size>3032449</size>\
            <hash xmlns='urn:xmpp:hashes:2' algo='sha3-256'>2XarmwTlNxDAMkvymloX3S5+VbylNrJt/l5QyPa+YoU=</hash>\
            </file><sources>\
            <encrypted xmlns='urn:xmpp:esfs:0' cipher='urn:xmpp:ciphers:aes-256-gcm-nopadding:0'>\
            <key>SuRJ2agVm/pQbJQlPq/B23Xt1YOOJCcEGJA5HrcYOGQ=</key><iv>T8RDMBaiqn6Ci4Nw</iv>\
            <sources xmlns='urn:xmpp:sfs:0'><url-data xmlns='http://jabber.org/protocol/url-data' \
            target='https://download.montague.lit/4a771ac1/encrypted.jpg'/></sources>\
            </encrypted></sources></file-sharing>";
        let element: Element = xml.parse().unwrap();
        let share = SharedFile::from_element(&element).unwrap();
        assert_eq!(share.name.as_deref(), Some("summit.jpg"));
        assert_eq!(share.size, Some(3_032_449));
        assert_eq!(share.sha256, None, "only sha-256 is read");
        assert_eq!(
            share.link.url,
            "https://download.montague.lit/4a771ac1/encrypted.jpg"
        );
    }

    #[test]
    fn unusable_sources_are_refused() {
        let share = sample();
        let xml = String::from(&share.to_element());
        for (from, to) in [
            ("https://up.example", "http://up.example"),
            (CIPHER_AES_256_GCM, "urn:xmpp:ciphers:aes-256-cbc-pkcs7:0"),
        ] {
            let element: Element = xml.replace(from, to).parse().unwrap();
            assert!(SharedFile::from_element(&element).is_err(), "{to}");
        }
    }
}
