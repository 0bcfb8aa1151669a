//! Telling other entities what Hush is: service discovery (XEP-0030), entity capabilities
//! (XEP-0115) with `+notify` for both OMEMO device-list nodes (XEP-0163), and reading the
//! device-list notifications that the `+notify` features ask the server for.
//!
//! Prosody (like other servers) only pushes PEP notifications to a resource whose caps
//! advertise `NODE+notify`, and it learns the features by sending a disco#info query to the
//! caps node: both halves have to work for device lists to arrive by themselves.

use hush_proto::{DeviceList, Element, Suite};
use tokio_xmpp::parsers::jid::{BareJid, Jid};
use tokio_xmpp::parsers::message::Message;
use xmpp_parsers::caps::Caps;
use xmpp_parsers::disco::{DiscoInfoResult, Identity};
use xmpp_parsers::hashes::Algo;
use xmpp_parsers::{ns, pubsub};

const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const CAPS: &str = "http://jabber.org/protocol/caps";
/// The caps node: who we are (a URI naming the software; the project has no site yet).
pub(crate) const CAPS_NODE: &str = "https://hush.invalid/caps";

/// Our identity `(category, type, name)`.
const IDENTITY: (&str, &str, &str) = ("client", "console", "Hush");

/// Our features, as disco#info lists them.
fn features() -> Vec<String> {
    let mut f: Vec<String> = [
        DISCO_INFO,
        CAPS,
        "urn:xmpp:ping",
        "urn:xmpp:carbons:2",
        "urn:xmpp:eme:0",
        "urn:xmpp:sid:0",
        "urn:xmpp:hints",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for suite in Suite::ALL {
        f.push(format!("{}+notify", suite.devices_node()));
    }
    f.sort();
    f
}

/// XEP-0115 §5.1: the SHA-1 of the verification string of one identity (no language) and the
/// features.
fn caps_digest(identity: (&str, &str, &str), features: &[String]) -> [u8; 20] {
    let identity = hush_wire::caps::Identity {
        category: identity.0,
        kind: identity.1,
        lang: "",
        name: identity.2,
    };
    let features: Vec<&str> = features.iter().map(String::as_str).collect();
    hush_wire::caps::digest(&[identity], &features, &[])
}

/// The same, in base64: the `ver` attribute.
fn caps_ver(identity: (&str, &str, &str), features: &[String]) -> String {
    base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        caps_digest(identity, features),
    )
}

/// The `<c/>` element for our presence.
pub(crate) fn caps() -> Element {
    // xmpp-parsers holds the digest and writes it in base64.
    Caps {
        ext: None,
        node: CAPS_NODE.to_owned(),
        hash: Algo::Sha_1,
        ver: caps_digest(IDENTITY, &features()).to_vec(),
    }
    .into()
}

/// The answer to a disco#info query (`node`, when the query named one, is echoed).
pub(crate) fn info(node: Option<&str>) -> Element {
    DiscoInfoResult {
        node: node.map(str::to_owned),
        identities: vec![Identity {
            category: IDENTITY.0.to_owned(),
            type_: IDENTITY.1.to_owned(),
            lang: None,
            name: Some(IDENTITY.2.to_owned()),
        }],
        features: features().into_iter().collect(),
        extensions: Vec::new(),
    }
    .into()
}

/// Whether we answer a disco#info query for this node: none, or our caps node.
pub(crate) fn is_our_node(node: Option<&str>) -> bool {
    match node {
        None => true,
        Some(n) => n.strip_prefix(CAPS_NODE).is_some_and(|rest| {
            rest.is_empty() || rest == format!("#{}", caps_ver(IDENTITY, &features()))
        }),
    }
}

/// A PEP notification carrying a device list: `(owner, list)`. The owner is the bare JID the
/// notification came from, so an account can only ever announce its own devices. Of several
/// items, the one with id `current` (XEP-0384 §5.3.1) counts, or else the first.
pub(crate) fn device_list_update(m: &Message) -> Option<(BareJid, DeviceList)> {
    let event = m
        .payloads
        .iter()
        .find(|p| p.is("event", ns::PUBSUB_EVENT))?;
    let event = match pubsub::event::Event::try_from(event.clone()) {
        Ok(event) => event,
        Err(e) => {
            log::warn!(
                "ignored a PubSub notification from {} that cannot be read: {e}",
                m.from.as_ref().map_or("?", Jid::as_str)
            );
            return None;
        }
    };
    let pubsub::event::Payload::Items {
        node, published, ..
    } = event.payload
    else {
        return None;
    };
    Suite::ALL.iter().find(|s| s.devices_node() == node.0)?;
    let owner = m.from.as_ref()?.to_bare();
    let item = published
        .iter()
        .find(|i| i.id.as_ref().is_some_and(|id| id.0 == "current"))
        .or_else(|| published.first())?;
    let list = DeviceList::from_element(item.payload.as_ref()?).ok()?;
    Some((owner, list))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(el: Element) -> Message {
        Message::try_from(el).expect("a message")
    }

    fn attr(name: &'static str) -> tokio_xmpp::minidom::rxml::NcName {
        tokio_xmpp::minidom::rxml::NcName::try_from(name).unwrap()
    }

    #[test]
    fn caps_ver_matches_xep_0115_simple_example() {
        // XEP-0115 §5.2: the Exodus example.
        let features: Vec<String> = [
            "http://jabber.org/protocol/caps",
            "http://jabber.org/protocol/disco#info",
            "http://jabber.org/protocol/disco#items",
            "http://jabber.org/protocol/muc",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            caps_ver(("client", "pc", "Exodus 0.9.1"), &features),
            "QgayPKawpkPSDYmwT/WM94uAlu0="
        );
    }

    #[test]
    fn we_advertise_notify_for_both_device_nodes() {
        let q = info(None);
        let vars: Vec<&str> = q
            .children()
            .filter(|c| c.name() == "feature")
            .filter_map(|c| c.attr("var"))
            .collect();
        assert!(vars.contains(&"urn:xmpp:omemo:2:devices+notify"));
        assert!(vars.contains(&"eu.siacs.conversations.axolotl.devicelist+notify"));
        let c = caps();
        // What we advertise is the hash of what we answer (XEP-0115 §5.1).
        assert_eq!(
            c.attr("ver"),
            Some(caps_ver(IDENTITY, &features()).as_str())
        );
        assert_eq!(c.attr("hash"), Some("sha-1"));
        let identity = q.get_child("identity", DISCO_INFO).unwrap();
        assert_eq!(identity.attr("xml:lang"), None);
        assert_eq!(identity.attr("name"), Some("Hush"));
        let node = format!("{CAPS_NODE}#{}", c.attr("ver").unwrap());
        assert!(is_our_node(Some(&node)));
        assert!(is_our_node(None));
        assert!(!is_our_node(Some("https://other.example#abc")));
        assert_eq!(info(Some(&node)).attr("node"), Some(node.as_str()));
    }

    #[test]
    fn device_list_notifications_name_their_owner() {
        let m: Element = "<message xmlns='jabber:client' from='bob@x' type='headline'>\
            <event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:omemo:2:devices'>\
            <item id='current'><devices xmlns='urn:xmpp:omemo:2'><device id='5'/><device id='9'/></devices></item>\
            </items></event></message>"
            .parse()
            .unwrap();
        let (owner, list) = device_list_update(&message(m)).unwrap();
        assert_eq!(owner.as_str(), "bob@x");
        assert_eq!(list.suite, Suite::Omemo2);
        assert_eq!(
            list.devices.iter().map(|d| d.id).collect::<Vec<_>>(),
            [5, 9]
        );
        let other: Element = "<message xmlns='jabber:client' from='bob@x'>\
            <event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:microblog:0'>\
            <item id='current'><entry xmlns='http://www.w3.org/2005/Atom'/></item></items></event></message>"
            .parse()
            .unwrap();
        assert!(device_list_update(&message(other)).is_none());
    }

    /// A notification naming `n` devices of `suite`, as tokio-xmpp hands it over.
    fn notification(suite: Suite, n: u32) -> Message {
        let payload = DeviceList {
            suite,
            devices: (1..=n).map(hush_proto::DeviceEntry::new).collect(),
        }
        .to_element();
        let item = Element::builder("item", ns::PUBSUB_EVENT)
            .attr(attr("id"), "current")
            .append(payload)
            .build();
        let items = Element::builder("items", ns::PUBSUB_EVENT)
            .attr(attr("node"), suite.devices_node())
            .append(item)
            .build();
        let event = Element::builder("event", ns::PUBSUB_EVENT)
            .append(items)
            .build();
        message(
            Element::builder("message", "jabber:client")
                .attr(attr("from"), "bob@x")
                .append(event)
                .build(),
        )
    }

    #[test]
    fn a_notification_of_50000_devices_is_read_in_linear_time() {
        // Reading ten times the devices takes about ten times as long; comparing every entry
        // with every earlier one (what this test caught once) makes it a hundred times. The
        // bound leaves room for a busy machine, and each size is timed at its best of three.
        for suite in Suite::ALL {
            let best = |n: u32| {
                let m = notification(suite, n);
                (0..3)
                    .map(|_| {
                        let started = std::time::Instant::now();
                        let (_, list) = device_list_update(&m).expect("a device list");
                        assert_eq!(list.devices.len(), n as usize);
                        started.elapsed()
                    })
                    .min()
                    .expect("three runs")
            };
            let (small, large) = (best(5_000), best(50_000));
            assert!(
                large < small * 35,
                "{suite}: 5,000 devices in {small:?}, 50,000 in {large:?}"
            );
        }
    }
}
