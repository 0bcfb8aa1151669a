//! Service discovery (XEP-0030) of the server and of accounts, and entity capabilities
//! (XEP-0115) of clients: reading `<c/>` from presence, the verification string that lets the
//! server cache what a `ver` means, and the features a disco#info answer lists.

use std::collections::BTreeSet;

use hush_wire::caps;
use tokio_xmpp::minidom::rxml::Namespace;
use tokio_xmpp::minidom::Element;

use crate::xml::{self, el, ns, Build};

/// Entity capabilities announced in a presence.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Caps {
    pub(crate) node: String,
    pub(crate) ver: String,
    /// The hash function, when the `ver` is a hash (legacy caps have none).
    pub(crate) hash: Option<String>,
}

impl Caps {
    /// `node#ver`, as the disco#info query names it.
    pub(crate) fn node_ver(&self) -> String {
        format!("{}#{}", self.node, self.ver)
    }
}

/// The `<c/>` of a presence, if it has a usable one.
pub(crate) fn caps(presence: &Element) -> Option<Caps> {
    let c = presence.get_child("c", ns::CAPS)?;
    let node = c.attr("node")?.to_owned();
    let ver = c.attr("ver")?.to_owned();
    if node.is_empty() || ver.is_empty() {
        return None;
    }
    Some(Caps {
        node,
        ver,
        hash: c.attr("hash").map(str::to_owned),
    })
}

/// The features a disco#info result lists.
pub(crate) fn features(query: &Element) -> BTreeSet<String> {
    query
        .children()
        .filter(|c| c.is("feature", ns::DISCO_INFO))
        .filter_map(|c| c.attr("var"))
        .map(str::to_owned)
        .collect()
}

/// XEP-0115 §5.1: the verification string of a disco#info result, SHA-1, base64. Only
/// `sha-1` is supported; any other hash is never cached.
pub(crate) fn ver(hash: &str, query: &Element) -> Option<String> {
    if hash != "sha-1" {
        return None;
    }
    let identities: Vec<[String; 4]> = query
        .children()
        .filter(|c| c.is("identity", ns::DISCO_INFO))
        .map(|i| {
            let attr = |n: &str| i.attr(n).unwrap_or_default().to_owned();
            let lang = i
                .attr_ns(&Namespace::XML, "lang")
                .unwrap_or_default()
                .to_owned();
            [attr("category"), attr("type"), lang, attr("name")]
        })
        .collect();
    let identities: Vec<caps::Identity<'_>> = identities
        .iter()
        .map(|[category, kind, lang, name]| caps::Identity {
            category,
            kind,
            lang,
            name,
        })
        .collect();
    let features: Vec<String> = features(query).into_iter().collect();
    let count = query
        .children()
        .filter(|c| c.is("feature", ns::DISCO_INFO))
        .count();
    if count != features.len() {
        return None; // duplicate features make the answer invalid (§5.4)
    }
    let features: Vec<&str> = features.iter().map(String::as_str).collect();
    let mut forms = Vec::new();
    for form in query.children().filter(|c| c.is("x", ns::DATA)) {
        let mut fields = xml::form_fields(form);
        let form_type = fields
            .iter()
            .find(|(var, _)| var == "FORM_TYPE")
            .and_then(|(_, v)| v.first().cloned())?;
        fields.retain(|(var, _)| var != "FORM_TYPE");
        forms.push(caps::Form { form_type, fields });
    }
    Some(caps::ver(&identities, &features, &forms))
}

/// The disco#info query the server sends a session to learn what its caps mean.
pub(crate) fn query(id: &str, from: &str, to: &str, node_ver: &str) -> Element {
    el("iq", ns::CLIENT)
        .with("type", "get")
        .with("id", id)
        .with("from", from)
        .with("to", to)
        .child(el("query", ns::DISCO_INFO).with("node", node_ver))
}

fn info(node: Option<&str>, identities: &[(&str, &str, &str)], features: &[&str]) -> Element {
    let mut q = el("query", ns::DISCO_INFO).with_opt("node", node);
    for (category, kind, name) in identities {
        q.append_child(
            el("identity", ns::DISCO_INFO)
                .with("category", *category)
                .with("type", *kind)
                .with("name", *name),
        );
    }
    for f in features {
        q.append_child(el("feature", ns::DISCO_INFO).with("var", *f));
    }
    q
}

/// The server's disco#info.
pub(crate) fn server_info() -> Element {
    info(
        None,
        &[("server", "im", "Hush devserver")],
        &[
            ns::DISCO_INFO,
            ns::DISCO_ITEMS,
            ns::PING,
            ns::CARBONS,
            ns::MAM,
            ns::SID,
            ns::ROSTER,
            "msgoffline",
            "urn:xmpp:mam:2#extended",
        ],
    )
}

/// An account's disco#info (the PEP service and the archive live on the bare JID).
pub(crate) fn account_info() -> Element {
    info(
        None,
        &[
            ("account", "registered", "Hush devserver account"),
            ("pubsub", "pep", "Personal Eventing"),
        ],
        &[
            ns::DISCO_INFO,
            ns::DISCO_ITEMS,
            ns::MAM,
            ns::SID,
            ns::PUBSUB,
            "http://jabber.org/protocol/pubsub#access-open",
            "http://jabber.org/protocol/pubsub#access-presence",
            "http://jabber.org/protocol/pubsub#access-whitelist",
            "http://jabber.org/protocol/pubsub#auto-create",
            "http://jabber.org/protocol/pubsub#config-node",
            "http://jabber.org/protocol/pubsub#config-node-max",
            "http://jabber.org/protocol/pubsub#create-nodes",
            "http://jabber.org/protocol/pubsub#delete-items",
            "http://jabber.org/protocol/pubsub#delete-nodes",
            "http://jabber.org/protocol/pubsub#item-ids",
            "http://jabber.org/protocol/pubsub#last-published",
            "http://jabber.org/protocol/pubsub#persistent-items",
            "http://jabber.org/protocol/pubsub#publish",
            "http://jabber.org/protocol/pubsub#publish-options",
            "http://jabber.org/protocol/pubsub#purge-nodes",
            "http://jabber.org/protocol/pubsub#retract-items",
            "http://jabber.org/protocol/pubsub#retrieve-items",
        ],
    )
}

/// The upload service's disco#info (XEP-0363 §3, §4): its identity, its feature, and its
/// largest file in an extended-info form.
pub(crate) fn upload_info(max_file_size: u64) -> Element {
    info(
        None,
        &[("store", "file", "HTTP File Upload")],
        &[ns::DISCO_INFO, ns::UPLOAD],
    )
    .child(
        el("x", ns::DATA)
            .with("type", "result")
            .child(xml::field("FORM_TYPE", Some("hidden"), &[ns::UPLOAD]))
            .child(xml::field(
                "max-file-size",
                None,
                &[max_file_size.to_string().as_str()],
            )),
    )
}

/// A PEP node's disco#info.
pub(crate) fn node_info(node: &str) -> Element {
    info(Some(node), &[("pubsub", "leaf", node)], &[ns::PUBSUB])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ver_matches_the_xep_0115_examples() {
        // §5.2, simple.
        let simple: Element = "<query xmlns='http://jabber.org/protocol/disco#info'>\
            <identity category='client' name='Exodus 0.9.1' type='pc'/>\
            <feature var='http://jabber.org/protocol/caps'/>\
            <feature var='http://jabber.org/protocol/disco#info'/>\
            <feature var='http://jabber.org/protocol/disco#items'/>\
            <feature var='http://jabber.org/protocol/muc'/></query>"
            .parse()
            .unwrap();
        assert_eq!(
            ver("sha-1", &simple).as_deref(),
            Some("QgayPKawpkPSDYmwT/WM94uAlu0=")
        );
        // §5.3, complex: languages and an extended form.
        let complex: Element = "<query xmlns='http://jabber.org/protocol/disco#info'>\
            <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>\
            <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>\
            <feature var='http://jabber.org/protocol/caps'/>\
            <feature var='http://jabber.org/protocol/disco#info'/>\
            <feature var='http://jabber.org/protocol/disco#items'/>\
            <feature var='http://jabber.org/protocol/muc'/>\
            <x xmlns='jabber:x:data' type='result'>\
            <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>\
            <field var='ip_version'><value>ipv4</value><value>ipv6</value></field>\
            <field var='os'><value>Mac</value></field>\
            <field var='os_version'><value>10.5.1</value></field>\
            <field var='software'><value>Psi</value></field>\
            <field var='software_version'><value>0.11</value></field></x></query>"
            .parse()
            .unwrap();
        assert_eq!(
            ver("sha-1", &complex).as_deref(),
            Some("q07IKJEyjvHSyhy//CH0CxmKi8w=")
        );
        assert_eq!(ver("md5", &simple), None);
    }

    #[test]
    fn caps_are_read_from_presence() {
        let p: Element = "<presence xmlns='jabber:client'><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://x' ver='abc='/></presence>"
            .parse()
            .unwrap();
        let c = caps(&p).unwrap();
        assert_eq!(c.node_ver(), "https://x#abc=");
        assert_eq!(c.hash.as_deref(), Some("sha-1"));
        let none: Element = "<presence xmlns='jabber:client'/>".parse().unwrap();
        assert!(caps(&none).is_none());
    }
}
