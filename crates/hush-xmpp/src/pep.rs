//! PEP (XEP-0163) requests for the OMEMO nodes: publish with publish-options, fetch items.

use hush_proto::Element;

pub(crate) const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
pub(crate) const PUBSUB_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
const DATA: &str = "jabber:x:data";

#[expect(
    clippy::expect_used,
    reason = "attribute names here are static, valid NCNames"
)]
pub(crate) fn attr(name: &'static str) -> tokio_xmpp::minidom::rxml::NcName {
    tokio_xmpp::minidom::rxml::NcName::try_from(name).expect("static attribute names are valid")
}

fn field(var: &str, value: &str, hidden: bool) -> Element {
    let mut b = Element::builder("field", DATA).attr(attr("var"), var);
    if hidden {
        b = b.attr(attr("type"), "hidden");
    }
    b.append(Element::builder("value", DATA).append(value).build())
        .build()
}

/// The node configuration OMEMO needs: readable by anyone, items kept.
fn form(form_type: &str, max_items: bool) -> Element {
    let mut x = Element::builder("x", DATA)
        .attr(attr("type"), "submit")
        .build();
    x.append_child(field("FORM_TYPE", form_type, true));
    x.append_child(field("pubsub#access_model", "open", false));
    x.append_child(field("pubsub#persist_items", "true", false));
    if max_items {
        x.append_child(field("pubsub#max_items", "max", false));
    }
    x
}

/// `<pubsub><publish node><item id>payload</item></publish><publish-options/></pubsub>`.
pub(crate) fn publish(
    node: &str,
    item_id: &str,
    payload: Element,
    with_options: bool,
    max_items: bool,
) -> Element {
    let item = Element::builder("item", PUBSUB)
        .attr(attr("id"), item_id)
        .append(payload)
        .build();
    let publish = Element::builder("publish", PUBSUB)
        .attr(attr("node"), node)
        .append(item)
        .build();
    let mut pubsub = Element::builder("pubsub", PUBSUB).append(publish).build();
    if with_options {
        let opts = Element::builder("publish-options", PUBSUB)
            .append(form(
                "http://jabber.org/protocol/pubsub#publish-options",
                max_items,
            ))
            .build();
        pubsub.append_child(opts);
    }
    pubsub
}

/// `<pubsub xmlns='…#owner'><configure node>form</configure></pubsub>` (XEP-0060 §8.2), used
/// when a node exists with another configuration and publish-options are refused.
pub(crate) fn configure(node: &str, max_items: bool) -> Element {
    let configure = Element::builder("configure", PUBSUB_OWNER)
        .attr(attr("node"), node)
        .append(form(
            "http://jabber.org/protocol/pubsub#node_config",
            max_items,
        ))
        .build();
    Element::builder("pubsub", PUBSUB_OWNER)
        .append(configure)
        .build()
}

/// `<pubsub><items node><item id/></items></pubsub>`.
pub(crate) fn fetch(node: &str, item_id: Option<&str>) -> Element {
    let mut items = Element::builder("items", PUBSUB)
        .attr(attr("node"), node)
        .build();
    if let Some(id) = item_id {
        items.append_child(
            Element::builder("item", PUBSUB)
                .attr(attr("id"), id)
                .build(),
        );
    }
    Element::builder("pubsub", PUBSUB).append(items).build()
}

/// The payloads of the items in a fetch result.
pub(crate) fn payloads(result: &Element) -> Vec<&Element> {
    result
        .get_child("items", PUBSUB)
        .map(|items| {
            items
                .children()
                .filter(|c| c.is("item", PUBSUB))
                .filter_map(|i| i.children().next())
                .collect()
        })
        .unwrap_or_default()
}
