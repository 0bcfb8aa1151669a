//! PEP (XEP-0163) requests for the OMEMO nodes: publish with publish-options, fetch items.

use hush_proto::Element;
use xmpp_parsers::data_forms::{DataForm, DataFormType, Field};
use xmpp_parsers::ns;
use xmpp_parsers::pubsub::owner::{self, Owner};
use xmpp_parsers::pubsub::pubsub::{Item, Items, Publish, PublishOptions};
use xmpp_parsers::pubsub::{ItemId, NodeName, PubSub};
use xso::error::FromElementError;

/// The FORM_TYPE of publish-options (XEP-0060 §7.1.5), which xmpp-parsers does not name.
const PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";

/// How one of our nodes is kept: who may read it, and whether it keeps every item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NodeConfig {
    /// `pubsub#access_model`.
    pub(crate) access: &'static str,
    /// `pubsub#max_items=max`: every item kept (one per device, one per room).
    pub(crate) max_items: bool,
}

impl NodeConfig {
    /// What OMEMO needs (XEP-0384 §"Server-side requirements"): readable by anyone, with
    /// every item kept when the node has one per device.
    pub(crate) fn omemo(max_items: bool) -> Self {
        Self {
            access: "open",
            max_items,
        }
    }

    /// Readable by the account alone, every item kept (XEP-0402 bookmarks).
    pub(crate) const PRIVATE: Self = Self {
        access: "whitelist",
        max_items: true,
    };
}

/// The node configuration `config`, items persisted, as a submitted form of `form_type`.
fn form(form_type: &str, config: NodeConfig) -> DataForm {
    let mut fields = vec![
        Field::text_single("pubsub#access_model", config.access),
        Field::text_single("pubsub#persist_items", "true"),
    ];
    if config.max_items {
        fields.push(Field::text_single("pubsub#max_items", "max"));
    }
    DataForm::new(DataFormType::Submit, form_type, fields)
}

/// `<pubsub><publish node><item id>payload</item></publish><publish-options/></pubsub>`.
pub(crate) fn publish(
    node: &str,
    item_id: &str,
    payload: Element,
    with_options: bool,
    config: NodeConfig,
) -> Element {
    PubSub::Publish {
        publish: Publish {
            node: NodeName(node.to_owned()),
            items: vec![Item {
                id: Some(ItemId(item_id.to_owned())),
                publisher: None,
                payload: Some(payload),
            }],
        },
        publish_options: with_options.then(|| PublishOptions {
            form: Some(form(PUBLISH_OPTIONS, config)),
        }),
    }
    .into()
}

/// `<pubsub xmlns='…#owner'><configure node>form</configure></pubsub>` (XEP-0060 §8.2), used
/// when a node exists with another configuration and publish-options are refused.
pub(crate) fn configure(node: &str, config: NodeConfig) -> Element {
    Owner {
        payload: owner::Payload::Configure {
            node: Some(NodeName(node.to_owned())),
            form: Some(form(ns::PUBSUB_CONFIGURE, config)),
        },
    }
    .into()
}

/// `<pubsub><items node><item id/></items></pubsub>`.
pub(crate) fn fetch(node: &str, item_id: Option<&str>) -> Element {
    let mut items = Items::new(node);
    if let Some(id) = item_id {
        items.items.push(Item {
            id: Some(ItemId(id.to_owned())),
            publisher: None,
            payload: None,
        });
    }
    PubSub::Items(items).into()
}

/// The payloads of the items in a fetch result (items without one are skipped). An answer
/// that is not a `<pubsub><items/></pubsub>` is an error.
pub(crate) fn payloads(result: Element) -> Result<Vec<Element>, xso::error::Error> {
    match PubSub::try_from(result) {
        Ok(PubSub::Items(items)) => Ok(items.items.into_iter().filter_map(|i| i.payload).collect()),
        Ok(_) | Err(FromElementError::Mismatch(_)) => Err(xso::error::Error::Other(
            "the answer is not a list of PubSub items",
        )),
        Err(FromElementError::Invalid(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBSUB: &str = ns::PUBSUB;

    const DATA: &str = "jabber:x:data";

    /// The value of field `var` in the form under `parent`.
    fn value(parent: &Element, var: &str) -> Option<String> {
        parent
            .get_child("x", DATA)?
            .children()
            .find(|f| f.attr("var") == Some(var))
            .and_then(|f| f.get_child("value", DATA))
            .map(Element::text)
    }

    #[test]
    fn a_publish_carries_the_item_and_the_options_omemo_needs() {
        let payload = Element::builder("list", "urn:xmpp:omemo:2").build();
        let el = publish(
            "urn:xmpp:omemo:2:devices",
            "current",
            payload,
            true,
            NodeConfig::omemo(true),
        );
        assert!(el.is("pubsub", PUBSUB));
        let publish = el.get_child("publish", PUBSUB).unwrap();
        assert_eq!(publish.attr("node"), Some("urn:xmpp:omemo:2:devices"));
        let item = publish.get_child("item", PUBSUB).unwrap();
        assert_eq!(item.attr("id"), Some("current"));
        assert!(item.get_child("list", "urn:xmpp:omemo:2").is_some());
        let options = el.get_child("publish-options", PUBSUB).unwrap();
        assert_eq!(
            value(options, "FORM_TYPE").as_deref(),
            Some(PUBLISH_OPTIONS)
        );
        assert_eq!(
            value(options, "pubsub#access_model").as_deref(),
            Some("open")
        );
        assert_eq!(value(options, "pubsub#max_items").as_deref(), Some("max"));
        let plain = publish_without_options();
        assert!(plain.get_child("publish-options", PUBSUB).is_none());
    }

    fn publish_without_options() -> Element {
        let payload = Element::builder("bundle", "urn:xmpp:omemo:2").build();
        publish(
            "urn:xmpp:omemo:2:bundles",
            "7",
            payload,
            false,
            NodeConfig::omemo(false),
        )
    }

    #[test]
    fn a_configure_and_a_fetch_name_their_node() {
        let el = configure("urn:xmpp:omemo:2:bundles", NodeConfig::omemo(false));
        let owner = "http://jabber.org/protocol/pubsub#owner";
        let configure = el.get_child("configure", owner).unwrap();
        assert_eq!(configure.attr("node"), Some("urn:xmpp:omemo:2:bundles"));
        assert_eq!(
            value(configure, "FORM_TYPE").as_deref(),
            Some("http://jabber.org/protocol/pubsub#node_config")
        );
        assert_eq!(value(configure, "pubsub#max_items"), None);
        let el = fetch("urn:xmpp:omemo:2:bundles", Some("7"));
        let items = el.get_child("items", PUBSUB).unwrap();
        assert_eq!(items.attr("node"), Some("urn:xmpp:omemo:2:bundles"));
        let ids: Vec<_> = items.children().map(|i| i.attr("id")).collect();
        assert_eq!(ids, [Some("7")]);
    }
}
