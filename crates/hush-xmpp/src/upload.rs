//! HTTP File Upload (XEP-0363), the XMPP half: finding the server's upload service and
//! asking it for a slot. The HTTP half (streaming the ciphertext up and down) is
//! [`crate::transfer`].
//!
//! The slot request names neither the file nor its type: the server learns only the size
//! of the ciphertext (which it must, to store it). The name, type, size and hash travel
//! inside the encrypted message.

use rand_core::CryptoRng;
use tokio_xmpp::parsers::jid::Jid;
use xmpp_parsers::disco::DiscoInfoResult;
use xmpp_parsers::http_upload::{HeaderName, SlotResult};

use crate::transfer::TransferError;

/// XEP-0363's namespace.
pub(crate) const NS: &str = "urn:xmpp:http:upload:0";

/// The most disco#items entries of our server looked at for an upload service.
pub(crate) const MAX_ITEMS_PROBED: usize = 20;

/// The server's upload service, as disco found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadService {
    /// Its address (often `upload.DOMAIN`).
    pub jid: Jid,
    /// The largest file it takes, in bytes, when it says.
    pub max_size: Option<u64>,
}

/// Where to put a file and where it can then be fetched. `Debug` leaves out the header
/// values (an `Authorization` value is a credential).
#[derive(Clone, PartialEq, Eq)]
pub struct Slot {
    /// The `https://` URL to PUT the ciphertext to.
    pub put: String,
    /// Headers the PUT must carry (`Authorization`, `Cookie`, `Expires` only).
    pub headers: Vec<(String, String)>,
    /// The `https://` URL it is fetched from afterwards: what goes in the link.
    pub get: String,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Slot")
            .field("put", &self.put)
            .field("headers", &names)
            .field("get", &self.get)
            .finish()
    }
}

/// The service `info` describes, if it is one: it lists XEP-0363's feature; its extended
/// info form may give `max-file-size`.
pub(crate) fn service_of(jid: Jid, info: &DiscoInfoResult) -> Option<UploadService> {
    if !info.features.iter().any(|f| *f == NS) {
        return None;
    }
    let max_size = info
        .extensions
        .iter()
        .filter(|form| form.form_type() == Some(NS))
        .flat_map(|form| form.fields.iter())
        .filter(|field| field.var.as_deref() == Some("max-file-size"))
        .flat_map(|field| field.values.iter())
        .find_map(|value| value.trim().parse().ok());
    Some(UploadService { jid, max_size })
}

/// A name for the slot request that says nothing about the file: 16 random hex digits.
pub(crate) fn neutral_name<R: CryptoRng + ?Sized>(rng: &mut R) -> String {
    let mut bytes = [0u8; 8];
    rng.fill_bytes(&mut bytes);
    let mut name = String::with_capacity(20);
    for b in bytes {
        name.push_str(&format!("{b:02x}"));
    }
    name.push_str(".bin");
    name
}

/// Reads the service's answer: both URLs must be `https://` (a service that offers `http://`
/// would have the ciphertext and its later readers' requests go in clear, and is refused).
pub(crate) fn slot_of(result: SlotResult) -> Result<Slot, TransferError> {
    for url in [&result.put.url, &result.get.url] {
        if !url.starts_with("https://") {
            return Err(TransferError::NotHttps { url: url.clone() });
        }
    }
    let headers = result
        .put
        .headers
        .into_iter()
        .map(|h| {
            let name = match h.name {
                HeaderName::Authorization => "Authorization",
                HeaderName::Cookie => "Cookie",
                HeaderName::Expires => "Expires",
            };
            (name.to_owned(), h.value)
        })
        .collect();
    Ok(Slot {
        put: result.put.url,
        headers,
        get: result.get.url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_proto::Element;

    fn info(xml: &str) -> DiscoInfoResult {
        DiscoInfoResult::try_from(xml.parse::<Element>().unwrap()).unwrap()
    }

    #[test]
    fn the_service_and_its_limit_are_read() {
        let with_limit = info(
            "<query xmlns='http://jabber.org/protocol/disco#info'>\
             <identity category='store' type='file' name='HTTP File Upload'/>\
             <feature var='urn:xmpp:http:upload:0'/>\
             <x type='result' xmlns='jabber:x:data'>\
             <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:http:upload:0</value></field>\
             <field var='max-file-size'><value>5242880</value></field></x></query>",
        );
        let jid: Jid = "upload.example.org".parse().unwrap();
        assert_eq!(
            service_of(jid.clone(), &with_limit),
            Some(UploadService {
                jid: jid.clone(),
                max_size: Some(5_242_880)
            })
        );
        let other = info(
            "<query xmlns='http://jabber.org/protocol/disco#info'>\
             <identity category='conference' type='text'/>\
             <feature var='http://jabber.org/protocol/muc'/></query>",
        );
        assert_eq!(service_of(jid, &other), None);
    }

    #[test]
    fn a_slot_must_be_https() {
        let slot = |put: &str, get: &str| {
            let xml = format!(
                "<slot xmlns='urn:xmpp:http:upload:0'><put url='{put}'>\
                 <header name='Authorization'>Basic x</header></put><get url='{get}'/></slot>"
            );
            slot_of(SlotResult::try_from(xml.parse::<Element>().unwrap()).unwrap())
        };
        let fine = slot("https://u/p", "https://u/g").unwrap();
        assert_eq!(
            fine.headers,
            vec![("Authorization".into(), "Basic x".into())]
        );
        assert!(matches!(
            slot("http://u/p", "https://u/g"),
            Err(TransferError::NotHttps { .. })
        ));
        assert!(matches!(
            slot("https://u/p", "http://u/g"),
            Err(TransferError::NotHttps { .. })
        ));
    }

    #[test]
    fn the_slot_name_says_nothing() {
        let mut rng = rand::rng();
        let a = neutral_name(&mut rng);
        assert_eq!(a.len(), 20);
        assert_ne!(a, neutral_name(&mut rng));
    }
}
