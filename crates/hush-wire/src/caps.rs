//! XEP-0115 entity capabilities: the verification string (§5.1) and its SHA-1 hash, computed
//! the same way by the client (what it advertises) and the server (what it checks a client's
//! advertisement against before trusting it for `+notify`).

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// One `<identity/>` of a disco#info result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Identity<'a> {
    /// Its `category`.
    pub category: &'a str,
    /// Its `type`.
    pub kind: &'a str,
    /// Its `xml:lang` (empty when none).
    pub lang: &'a str,
    /// Its `name` (empty when none).
    pub name: &'a str,
}

/// An extended disco form: its FORM_TYPE, and its other fields with their values.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Form {
    /// The value of the `FORM_TYPE` field.
    pub form_type: String,
    /// Every other field: its `var` and values.
    pub fields: Vec<(String, Vec<String>)>,
}

/// The verification string of §5.1: identities, features and forms, each sorted, each item
/// followed by `<`.
pub fn verification_string(
    identities: &[Identity<'_>],
    features: &[&str],
    forms: &[Form],
) -> String {
    let mut s = String::new();
    let mut identities = identities.to_vec();
    identities.sort();
    for i in identities {
        for part in [i.category, "/", i.kind, "/", i.lang, "/", i.name, "<"] {
            s.push_str(part);
        }
    }
    let mut features = features.to_vec();
    features.sort_unstable();
    for f in features {
        s.push_str(f);
        s.push('<');
    }
    let mut forms = forms.to_vec();
    forms.sort();
    for mut form in forms {
        s.push_str(&form.form_type);
        s.push('<');
        form.fields.sort();
        for (var, mut values) in form.fields {
            s.push_str(&var);
            s.push('<');
            values.sort();
            for v in values {
                s.push_str(&v);
                s.push('<');
            }
        }
    }
    s
}

/// The `ver` attribute for `hash='sha-1'`: the verification string's SHA-1, in base64.
pub fn ver(identities: &[Identity<'_>], features: &[&str], forms: &[Form]) -> String {
    base64::engine::general_purpose::STANDARD.encode(digest(identities, features, forms))
}

/// The verification string's SHA-1, before base64 (what typed caps elements hold).
pub fn digest(identities: &[Identity<'_>], features: &[&str], forms: &[Form]) -> [u8; 20] {
    let s = verification_string(identities, features, forms);
    Sha1::digest(s.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XEP-0115 §5.2, the simple example.
    #[test]
    fn the_simple_example() {
        let identity = Identity {
            category: "client",
            kind: "pc",
            lang: "",
            name: "Exodus 0.9.1",
        };
        let features = [
            "http://jabber.org/protocol/caps",
            "http://jabber.org/protocol/disco#info",
            "http://jabber.org/protocol/disco#items",
            "http://jabber.org/protocol/muc",
        ];
        assert_eq!(
            ver(&[identity], &features, &[]),
            "QgayPKawpkPSDYmwT/WM94uAlu0="
        );
    }

    /// XEP-0115 §5.3, the complex example (two identities in two languages, a form).
    #[test]
    fn the_complex_example() {
        let identities = [
            Identity {
                category: "client",
                kind: "pc",
                lang: "en",
                name: "Psi 0.11",
            },
            Identity {
                category: "client",
                kind: "pc",
                lang: "el",
                name: "Ψ 0.11",
            },
        ];
        let features = [
            "http://jabber.org/protocol/caps",
            "http://jabber.org/protocol/disco#info",
            "http://jabber.org/protocol/disco#items",
            "http://jabber.org/protocol/muc",
        ];
        let form = Form {
            form_type: "urn:xmpp:dataforms:softwareinfo".into(),
            fields: vec![
                ("ip_version".into(), vec!["ipv4".into(), "ipv6".into()]),
                ("os".into(), vec!["Mac".into()]),
                ("os_version".into(), vec!["10.5.1".into()]),
                ("software".into(), vec!["Psi".into()]),
                ("software_version".into(), vec!["0.11".into()]),
            ],
        };
        assert_eq!(
            ver(&identities, &features, &[form]),
            "q07IKJEyjvHSyhy//CH0CxmKi8w="
        );
    }
}
