//! The XMPP half of HTTP File Upload (XEP-0363) at `upload.DOMAIN`: its disco#info (identity
//! `store/file`, the feature, `max-file-size` in an extended-info form) and slot requests,
//! answered with what [`crate::upload::Service`] hands out, or refused: `not-acceptable` with
//! `<file-too-large/>` above the limit, `bad-request` for a malformed request,
//! `resource-constraint` when the service is full.

use tokio_xmpp::minidom::Element;

use super::Cx;
use crate::disco;
use crate::upload::{usable_name, usable_type, SlotRefusal};
use crate::xml::{el, ns, Build, Condition};

/// A slot request's attributes, checked.
struct Request<'a> {
    filename: &'a str,
    size: u64,
    content_type: Option<&'a str>,
}

/// Reads `<request filename='…' size='…' content-type='…'/>`; the reason it is refused
/// otherwise.
fn parse(request: &Element) -> Result<Request<'_>, &'static str> {
    let filename = request.attr("filename").ok_or("no filename")?;
    if !usable_name(filename) {
        return Err("the filename is empty, too long or holds a slash or control characters");
    }
    let size = request.attr("size").ok_or("no size")?;
    if size.is_empty() || size.len() > 19 || !size.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the size is not a number of bytes");
    }
    let size = size
        .parse()
        .map_err(|_| "the size is not a number of bytes")?;
    let content_type = match request.attr("content-type") {
        Some(t) if !usable_type(t) => return Err("the content-type is not printable ASCII"),
        other => other,
    };
    if request.children().next().is_some() {
        return Err("a slot request has no children");
    }
    Ok(Request {
        filename,
        size,
        content_type,
    })
}

impl Cx<'_> {
    /// An IQ request to the upload service itself.
    pub(super) fn upload_request(&mut self, iq: &Element, payload: &Element) {
        let get = iq.attr("type") == Some("get");
        match (payload.ns().as_str(), payload.name(), get) {
            (ns::DISCO_INFO, "query", true) if payload.attr("node").is_none() => {
                let info = disco::upload_info(self.shared.upload.max_file());
                self.result(iq, Some(info));
            }
            (ns::DISCO_INFO, "query", true) => self.error(iq, Condition::ItemNotFound, None, None),
            (ns::DISCO_ITEMS, "query", true) => {
                let items = el("query", ns::DISCO_ITEMS).with_opt("node", payload.attr("node"));
                self.result(iq, Some(items));
            }
            (ns::PING, "ping", true) => self.result(iq, None),
            (ns::UPLOAD, "request", true) => self.slot(iq, payload),
            (ns::UPLOAD, "request", false) => self.error(
                iq,
                Condition::BadRequest,
                None,
                Some("a slot is requested with an IQ of type get"),
            ),
            _ => self.error(iq, Condition::ServiceUnavailable, None, None),
        }
    }

    fn slot(&mut self, iq: &Element, request: &Element) {
        let request = match parse(request) {
            Ok(r) => r,
            Err(why) => return self.error(iq, Condition::BadRequest, None, Some(why)),
        };
        let issued = self
            .shared
            .upload
            .slot(request.filename, request.size, request.content_type);
        match issued {
            Ok(slot) => {
                let answer = el("slot", ns::UPLOAD)
                    .child(
                        el("put", ns::UPLOAD).with("url", slot.put).child(
                            el("header", ns::UPLOAD)
                                .with("name", "Authorization")
                                .with_text(slot.authorization),
                        ),
                    )
                    .child(el("get", ns::UPLOAD).with("url", slot.get));
                self.result(iq, Some(answer));
            }
            Err(SlotRefusal::TooLarge { max }) => {
                let extra = el("file-too-large", ns::UPLOAD)
                    .child(el("max-file-size", ns::UPLOAD).with_text(max.to_string()));
                let text = format!("the file is larger than the {max} bytes this service takes");
                self.error(iq, Condition::NotAcceptable, Some(extra), Some(&text));
            }
            Err(SlotRefusal::Full) => self.error(
                iq,
                Condition::ResourceConstraint,
                None,
                Some("the upload service is full; try later"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(attrs: &str) -> Element {
        format!("<request xmlns='urn:xmpp:http:upload:0' {attrs}/>")
            .parse()
            .unwrap()
    }

    #[test]
    fn slot_requests_are_checked() {
        let ok = request("filename='a.bin' size='42' content-type='application/octet-stream'");
        let r = parse(&ok).unwrap();
        assert_eq!((r.filename, r.size), ("a.bin", 42));
        assert_eq!(r.content_type, Some("application/octet-stream"));
        assert!(parse(&request("filename='a.bin' size='0'")).is_ok());
        for bad in [
            "size='1'",
            "filename='a.bin'",
            "filename='' size='1'",
            "filename='../x' size='1'",
            "filename='a' size='-1'",
            "filename='a' size='+1'",
            "filename='a' size='1.5'",
            "filename='a' size='99999999999999999999'",
            "filename='a' size='1' content-type='a&#10;b'",
        ] {
            assert!(parse(&request(bad)).is_err(), "{bad}");
        }
        let with_child: Element =
            "<request xmlns='urn:xmpp:http:upload:0' filename='a' size='1'><x/></request>"
                .parse()
                .unwrap();
        assert!(parse(&with_child).is_err());
    }
}
