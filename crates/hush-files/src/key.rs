//! A file's key and IV, and the `aesgcm://` link that carries them (XEP-0454).
//!
//! `aesgcm://HOST/PATH#IVKEY` is `https://HOST/PATH` with the IV (12 bytes, or 16 from old
//! senders) and the 32-byte AES key in hex as the fragment. The link travels only inside an
//! OMEMO message; the server that stores the file sees the URL without the fragment.

use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{FileError, LinkFault};

/// A GCM initialisation vector: 12 bytes as XEP-0454 says, or 16 as older clients sent.
#[derive(Clone, PartialEq, Eq)]
pub enum Iv {
    /// 96 bits, what we send and what every current client sends.
    Standard([u8; 12]),
    /// 128 bits, from older Conversations releases; read only.
    Long([u8; 16]),
}

impl Iv {
    /// The IV's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Standard(iv) => iv,
            Self::Long(iv) => iv,
        }
    }
}

/// The secret of one shared file: an AES-256 key and the IV it was used with. Never reuse
/// one for a second file. Wiped on drop; `Debug` shows nothing of it.
#[derive(Clone)]
pub struct FileKey {
    key: Zeroizing<[u8; 32]>,
    iv: Iv,
}

impl Drop for FileKey {
    fn drop(&mut self) {
        match &mut self.iv {
            Iv::Standard(iv) => iv.zeroize(),
            Iv::Long(iv) => iv.zeroize(),
        }
    }
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKey(<redacted>)")
    }
}

impl PartialEq for FileKey {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.key.as_ref().ct_eq(other.key.as_ref()))
            && bool::from(self.iv.as_bytes().ct_eq(other.iv.as_bytes()))
    }
}

impl FileKey {
    /// A fresh key and 12-byte IV from `rng` (the caller's OS-seeded generator).
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        let mut iv = [0u8; 12];
        rng.fill_bytes(&mut iv);
        Self {
            key,
            iv: Iv::Standard(iv),
        }
    }

    /// A key from its parts (as a XEP-0448 `<key/>` and `<iv/>` give them).
    pub fn from_parts(key: [u8; 32], iv: Iv) -> Self {
        Self {
            key: Zeroizing::new(key),
            iv,
        }
    }

    pub(crate) fn key_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// The AES key's bytes, for a XEP-0448 `<key/>` element (which travels encrypted only).
    pub fn secret_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// The IV.
    pub fn iv(&self) -> &Iv {
        &self.iv
    }

    /// The fragment of an `aesgcm://` link: IV then key, in lower-case hex.
    fn fragment(&self) -> Zeroizing<String> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(48));
        bytes.extend_from_slice(self.iv.as_bytes());
        bytes.extend_from_slice(self.key.as_ref());
        Zeroizing::new(hex::encode(bytes.as_slice()))
    }

    /// Reads a fragment of 88 (12-byte IV) or 96 (16-byte IV) hex digits.
    fn from_fragment(fragment: &str) -> Result<Self, FileError> {
        let bad = FileError::BadLink(LinkFault::KeyLength);
        let bytes = Zeroizing::new(hex::decode(fragment).map_err(|_| bad.clone())?);
        let iv_len = match bytes.len() {
            44 => 12,
            48 => 16,
            _ => return Err(bad),
        };
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes[iv_len..]);
        let iv = if iv_len == 12 {
            let mut iv = [0u8; 12];
            iv.copy_from_slice(&bytes[..12]);
            Iv::Standard(iv)
        } else {
            let mut iv = [0u8; 16];
            iv.copy_from_slice(&bytes[..16]);
            Iv::Long(iv)
        };
        let made = Self::from_parts(key, iv);
        key.zeroize();
        Ok(made)
    }
}

/// An `aesgcm://` link: where the encrypted file is (always HTTPS) and its key.
#[derive(Clone, PartialEq)]
pub struct Link {
    /// `https://HOST/PATH`: what is fetched. Never `http://`.
    pub url: String,
    /// The file's key.
    pub key: FileKey,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("url", &self.url)
            .field("key", &self.key)
            .finish()
    }
}

const SCHEME: &str = "aesgcm://";

impl Link {
    /// The link for a file uploaded to `url` (which must be `https://…`) with `key`.
    pub fn new(url: &str, key: FileKey) -> Result<Self, FileError> {
        let rest = url
            .strip_prefix("https://")
            .ok_or(FileError::BadLink(LinkFault::Url))?;
        check_url_part(rest)?;
        Ok(Self {
            url: url.to_owned(),
            key,
        })
    }

    /// Reads `aesgcm://HOST/PATH#IVKEY`. Surrounding whitespace is allowed (a body that is only
    /// the link); anything else around it is not.
    pub fn parse(text: &str) -> Result<Self, FileError> {
        let text = text.trim();
        let rest = match text.get(..SCHEME.len()) {
            Some(scheme) if scheme.eq_ignore_ascii_case(SCHEME) => &text[SCHEME.len()..],
            _ => return Err(FileError::BadLink(LinkFault::Scheme)),
        };
        let (location, fragment) = rest
            .rsplit_once('#')
            .ok_or(FileError::BadLink(LinkFault::NoKey))?;
        check_url_part(location)?;
        let key = FileKey::from_fragment(fragment)?;
        Ok(Self {
            url: format!("https://{location}"),
            key,
        })
    }

    /// `aesgcm://HOST/PATH#IVKEY`, the body of the message that shares the file. It holds the
    /// key: it goes only inside encryption.
    pub fn to_aesgcm(&self) -> Zeroizing<String> {
        let location = self.url.strip_prefix("https://").unwrap_or(&self.url);
        Zeroizing::new(format!(
            "{SCHEME}{location}#{}",
            self.key.fragment().as_str()
        ))
    }

    /// The last segment of the URL's path, percent-decoding left alone: a name to save under
    /// when the sender gave none.
    pub fn file_name(&self) -> Option<&str> {
        let path = self.url.split(['?', '#']).next()?;
        let name = path.rsplit('/').next()?;
        (!name.is_empty()).then_some(name)
    }
}

/// Host and path: not empty, a host before the first `/`, no spaces or control characters.
fn check_url_part(location: &str) -> Result<(), FileError> {
    let host = location.split(['/', '?']).next().unwrap_or("");
    let fine = !host.is_empty()
        && !location.contains('#')
        && location
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control());
    if fine {
        Ok(())
    } else {
        Err(FileError::BadLink(LinkFault::Url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IV12: &str = "000102030405060708090a0b";
    const KEY: &str = "101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f";

    #[test]
    fn a_link_round_trips() {
        let text = format!("aesgcm://upload.example.org/abc/photo.jpg#{IV12}{KEY}");
        let link = Link::parse(&text).unwrap();
        assert_eq!(link.url, "https://upload.example.org/abc/photo.jpg");
        assert_eq!(link.key.iv().as_bytes().len(), 12);
        assert_eq!(link.to_aesgcm().as_str(), text);
        assert_eq!(link.file_name(), Some("photo.jpg"));
        assert_eq!(Link::parse(&format!(" {text}\n")).unwrap(), link);
    }

    #[test]
    fn a_sixteen_byte_iv_is_read() {
        let text = format!("aesgcm://h/p#{IV12}0c0d0e0f{KEY}");
        let link = Link::parse(&text).unwrap();
        assert!(matches!(link.key.iv(), Iv::Long(_)));
    }

    #[test]
    fn bad_links_say_why() {
        let cases = [
            (format!("https://h/p#{IV12}{KEY}"), LinkFault::Scheme),
            ("aesgcm://h/p".to_owned(), LinkFault::NoKey),
            (format!("aesgcm://h/p#{KEY}"), LinkFault::KeyLength),
            (format!("aesgcm://h/p#{IV12}{KEY}zz"), LinkFault::KeyLength),
            (format!("aesgcm:///p#{IV12}{KEY}"), LinkFault::Url),
            (format!("aesgcm://h/a b#{IV12}{KEY}"), LinkFault::Url),
            (format!("see aesgcm://h/p#{IV12}{KEY}"), LinkFault::Scheme),
        ];
        for (text, fault) in cases {
            assert_eq!(Link::parse(&text), Err(FileError::BadLink(fault)), "{text}");
        }
    }

    #[test]
    fn only_https_makes_a_link() {
        let key = FileKey::from_parts([1; 32], Iv::Standard([2; 12]));
        assert!(Link::new("http://h/p", key.clone()).is_err());
        assert!(Link::new("https://h/p", key).is_ok());
    }

    #[test]
    fn debug_shows_no_key() {
        let link = Link::parse(&format!("aesgcm://h/p#{IV12}{KEY}")).unwrap();
        let shown = format!("{link:?}");
        assert!(!shown.contains(&KEY[..16]), "{shown}");
        assert!(!shown.contains(IV12), "{shown}");
    }
}
