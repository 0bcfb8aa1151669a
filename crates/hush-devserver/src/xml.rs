//! Building and reading stanzas: namespaces, a terse element builder over minidom, stanza error
//! replies (RFC 6120 §8.3) and XEP-0082 timestamps.

use std::str::FromStr;

use tokio_xmpp::minidom::rxml::{Namespace, NcName};
use tokio_xmpp::minidom::Element;

/// The namespaces the server speaks.
pub(crate) mod ns {
    pub(crate) const CLIENT: &str = "jabber:client";
    pub(crate) const STREAM: &str = "http://etherx.jabber.org/streams";
    pub(crate) const STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
    pub(crate) const STANZA_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
    pub(crate) const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
    pub(crate) const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
    pub(crate) const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
    pub(crate) const PING: &str = "urn:xmpp:ping";
    pub(crate) const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
    pub(crate) const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
    pub(crate) const CAPS: &str = "http://jabber.org/protocol/caps";
    pub(crate) const CARBONS: &str = "urn:xmpp:carbons:2";
    pub(crate) const FORWARD: &str = "urn:xmpp:forward:0";
    pub(crate) const DELAY: &str = "urn:xmpp:delay";
    pub(crate) const HINTS: &str = "urn:xmpp:hints";
    pub(crate) const SID: &str = "urn:xmpp:sid:0";
    pub(crate) const MAM: &str = "urn:xmpp:mam:2";
    pub(crate) const RSM: &str = "http://jabber.org/protocol/rsm";
    pub(crate) const DATA: &str = "jabber:x:data";
    pub(crate) const ROSTER: &str = "jabber:iq:roster";
    pub(crate) const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
    pub(crate) const PUBSUB_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
    pub(crate) const PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
    pub(crate) const PUBSUB_ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
    pub(crate) const UPLOAD: &str = "urn:xmpp:http:upload:0";
}

/// An attribute name. Only ever called with literals of this crate, all valid NCNames (the
/// unit tests build every one of them).
#[expect(
    clippy::expect_used,
    reason = "attribute names in this crate are static, valid NCNames"
)]
fn attr_name(name: &'static str) -> NcName {
    NcName::try_from(name).expect("attribute names in this crate are valid NCNames")
}

/// A new element without attributes or children.
pub(crate) fn el(name: &str, namespace: &str) -> Element {
    Element::bare(name, namespace)
}

/// Chainable additions to an element.
pub(crate) trait Build: Sized {
    /// Sets an attribute.
    fn with(self, name: &'static str, value: impl Into<String>) -> Self;
    /// Sets an attribute when there is a value.
    fn with_opt(self, name: &'static str, value: Option<impl Into<String>>) -> Self;
    /// Appends a child element.
    fn child(self, child: Element) -> Self;
    /// Appends text.
    fn with_text(self, text: impl Into<String>) -> Self;
}

impl Build for Element {
    fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        set_attr(&mut self, name, value);
        self
    }

    fn with_opt(self, name: &'static str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.with(name, v),
            None => self,
        }
    }

    fn child(mut self, child: Element) -> Self {
        self.append_child(child);
        self
    }

    fn with_text(mut self, text: impl Into<String>) -> Self {
        let text = text.into();
        if !text.is_empty() {
            self.append_text(text);
        }
        self
    }
}

/// Sets (or replaces) an attribute.
pub(crate) fn set_attr(element: &mut Element, name: &'static str, value: impl Into<String>) {
    element.set_attr(Namespace::NONE, attr_name(name), value.into());
}

/// `<field var><value>…</value></field>` of a data form.
pub(crate) fn field(var: &str, kind: Option<&str>, values: &[&str]) -> Element {
    let mut f = el("field", ns::DATA)
        .with("var", var)
        .with_opt("type", kind);
    for v in values {
        f.append_child(el("value", ns::DATA).with_text(*v));
    }
    f
}

/// The fields of a data form: `(var, values)` in document order.
pub(crate) fn form_fields(form: &Element) -> Vec<(String, Vec<String>)> {
    form.children()
        .filter(|c| c.is("field", ns::DATA))
        .filter_map(|f| {
            let var = f.attr("var")?.to_owned();
            let values = f
                .children()
                .filter(|v| v.is("value", ns::DATA))
                .map(|v| v.text())
                .collect();
            Some((var, values))
        })
        .collect()
}

/// The stanza error conditions of RFC 6120 §8.3.3 that the server uses, with their usual
/// error type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Condition {
    BadRequest,
    Conflict,
    FeatureNotImplemented,
    Forbidden,
    ItemNotFound,
    JidMalformed,
    NotAcceptable,
    NotAllowed,
    NotAuthorized,
    RegistrationRequired,
    RemoteServerNotFound,
    ResourceConstraint,
    ServiceUnavailable,
}

impl Condition {
    fn name(self) -> &'static str {
        match self {
            Self::BadRequest => "bad-request",
            Self::Conflict => "conflict",
            Self::FeatureNotImplemented => "feature-not-implemented",
            Self::Forbidden => "forbidden",
            Self::ItemNotFound => "item-not-found",
            Self::JidMalformed => "jid-malformed",
            Self::NotAcceptable => "not-acceptable",
            Self::NotAllowed => "not-allowed",
            Self::NotAuthorized => "not-authorized",
            Self::RegistrationRequired => "registration-required",
            Self::RemoteServerNotFound => "remote-server-not-found",
            Self::ResourceConstraint => "resource-constraint",
            Self::ServiceUnavailable => "service-unavailable",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Self::BadRequest | Self::JidMalformed | Self::NotAcceptable => "modify",
            Self::Forbidden | Self::NotAuthorized | Self::RegistrationRequired => "auth",
            Self::ResourceConstraint => "wait",
            Self::Conflict
            | Self::FeatureNotImplemented
            | Self::ItemNotFound
            | Self::NotAllowed
            | Self::RemoteServerNotFound
            | Self::ServiceUnavailable => "cancel",
        }
    }
}

/// An error reply to `original` (RFC 6120 §8.3.1): same name and id, `from` and `to` swapped,
/// type `error`. `None` for an error stanza: errors are never answered with errors.
pub(crate) fn error_reply(
    original: &Element,
    condition: Condition,
    extra: Option<Element>,
    text: Option<&str>,
) -> Option<Element> {
    if original.attr("type") == Some("error") {
        return None;
    }
    let mut error = el("error", ns::CLIENT)
        .with("type", condition.kind())
        .child(el(condition.name(), ns::STANZA_ERRORS));
    if let Some(t) = text {
        error.append_child(el("text", ns::STANZA_ERRORS).with_text(t));
    }
    if let Some(x) = extra {
        error.append_child(x);
    }
    Some(
        el(original.name(), ns::CLIENT)
            .with("type", "error")
            .with_opt("id", original.attr("id"))
            .with_opt("to", original.attr("from"))
            .with_opt("from", original.attr("to"))
            .child(error),
    )
}

/// The result of an IQ request, with an optional payload.
pub(crate) fn iq_result(request: &Element, payload: Option<Element>) -> Element {
    let mut iq = el("iq", ns::CLIENT)
        .with("type", "result")
        .with_opt("id", request.attr("id"))
        .with_opt("to", request.attr("from"))
        .with_opt("from", request.attr("to"));
    if let Some(p) = payload {
        iq.append_child(p);
    }
    iq
}

/// The element serialized, for inspection by tests and the demo.
pub(crate) fn to_string(element: &Element) -> String {
    let mut out = Vec::new();
    match element.write_to(&mut out) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        Err(e) => format!("<!-- unserializable: {e} -->"),
    }
}

/// Microseconds since the Unix epoch, now.
pub(crate) fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A XEP-0082 DateTime in UTC with microseconds, e.g. `2024-02-29T23:59:59.000001Z`.
pub(crate) fn stamp(micros: u64) -> String {
    hush_wire::date::format_micros(micros)
}

/// Parses a XEP-0082 DateTime into microseconds since the epoch (moments before 1970 count as
/// 0). `None` if it is not a valid DateTime.
pub(crate) fn parse_stamp(text: &str) -> Option<u64> {
    let parsed = xmpp_parsers::date::DateTime::from_str(text.trim()).ok()?;
    Some(u64::try_from(parsed.0.timestamp_micros()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attribute_name_used_is_valid() {
        for name in [
            "id",
            "to",
            "from",
            "type",
            "var",
            "node",
            "ver",
            "hash",
            "by",
            "stamp",
            "queryid",
            "complete",
            "index",
            "mechanism",
            "category",
            "name",
            "jid",
            "max_items",
            "notify",
            "label",
            "publisher",
            "subscription",
            "url",
        ] {
            let _ = attr_name(name);
        }
    }

    #[test]
    fn stamps_round_trip() {
        assert_eq!(stamp(0), "1970-01-01T00:00:00.000000Z");
        // 2024-02-29T23:59:59.000001Z, a leap day.
        let micros = 1_709_251_199_000_001;
        assert_eq!(stamp(micros), "2024-02-29T23:59:59.000001Z");
        assert_eq!(parse_stamp(&stamp(micros)), Some(micros));
        assert_eq!(
            parse_stamp("2000-03-01T00:00:00Z"),
            Some(951_868_800_000_000)
        );
        assert_eq!(
            parse_stamp("2000-03-01T01:00:00+01:00"),
            Some(951_868_800_000_000)
        );
        assert_eq!(parse_stamp("1960-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_stamp("yesterday"), None);
        assert_eq!(parse_stamp(""), None);
    }

    #[test]
    fn error_replies_swap_addresses_and_never_answer_errors() {
        let iq: Element = "<iq xmlns='jabber:client' type='get' id='a1' from='a@x/r' to='b@x'><q xmlns='z'/></iq>"
            .parse()
            .unwrap();
        let reply = error_reply(&iq, Condition::ServiceUnavailable, None, None).unwrap();
        assert_eq!(reply.attr("to"), Some("a@x/r"));
        assert_eq!(reply.attr("from"), Some("b@x"));
        assert_eq!(reply.attr("id"), Some("a1"));
        let error = reply.get_child("error", ns::CLIENT).unwrap();
        assert_eq!(error.attr("type"), Some("cancel"));
        assert!(error.has_child("service-unavailable", ns::STANZA_ERRORS));
        assert!(error_reply(&reply, Condition::BadRequest, None, None).is_none());
    }
}
