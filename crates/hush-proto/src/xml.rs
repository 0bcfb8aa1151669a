//! Small helpers for reading XEP-0384 elements with minidom.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use minidom::Element;

use crate::error::{ProtoError, Result};
use crate::keys::check_id;

pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes base64, tolerating the whitespace some clients put into element text.
pub(crate) fn b64_decode(text: &str) -> Result<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| ProtoError::MalformedXml(format!("invalid base64: {e}")))
}

pub(crate) fn child<'a>(el: &'a Element, name: &str, ns: &str) -> Result<&'a Element> {
    el.get_child(name, ns)
        .ok_or_else(|| ProtoError::MalformedXml(format!("<{}/> lacks <{name}/>", el.name())))
}

pub(crate) fn text_of(el: &Element) -> String {
    el.text()
}

pub(crate) fn id_attr(el: &Element, name: &str) -> Result<u32> {
    let raw = el.attr(name).ok_or_else(|| {
        ProtoError::MalformedXml(format!("<{}/> lacks the `{name}` attribute", el.name()))
    })?;
    let n: u64 = raw.trim().parse().map_err(|_| {
        ProtoError::MalformedXml(format!(
            "`{name}='{raw}'` on <{}/> is not a number",
            el.name()
        ))
    })?;
    check_id(n)
}

/// Reads an id attribute that may legitimately be 0 on legacy key ids (some clients start at 0).
pub(crate) fn key_id_attr(el: &Element, name: &str) -> Result<u32> {
    let raw = el.attr(name).ok_or_else(|| {
        ProtoError::MalformedXml(format!("<{}/> lacks the `{name}` attribute", el.name()))
    })?;
    raw.trim().parse::<u32>().map_err(|_| {
        ProtoError::MalformedXml(format!(
            "`{name}='{raw}'` on <{}/> is not a number",
            el.name()
        ))
    })
}

/// An attribute name for minidom's builder; all ours are static, valid NCNames.
#[expect(
    clippy::expect_used,
    reason = "attribute names in this crate are static, valid NCNames"
)]
pub(crate) fn an(name: &'static str) -> minidom::rxml::NcName {
    minidom::rxml::NcName::try_from(name).expect("attribute names in this crate are valid NCNames")
}
