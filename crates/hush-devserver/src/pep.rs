//! Personal Eventing (XEP-0163): a subset of XEP-0060 publish-subscribe per account — nodes
//! created on first publish, publish-options checked as preconditions the way Prosody does
//! (`conflict` + `precondition-not-met` when a field differs from the node's configuration),
//! owner configuration, item retrieval with access control, retraction, purge and deletion.
//!
//! The server has no rosters, so the access models that depend on one (`presence`, `roster`,
//! `authorize`, `whitelist`) let only the owner read; `open` lets every local user read and be
//! notified.

use std::collections::BTreeMap;

use tokio_xmpp::minidom::Element;

use crate::xml::{self, el, ns, Build};

/// Items a node keeps at most, also what `max_items=max` means.
pub(crate) const ITEMS_CAP: usize = 256;
/// Nodes an account may have.
pub(crate) const MAX_NODES: usize = 1024;

const ACCESS_MODELS: [&str; 5] = ["open", "presence", "roster", "authorize", "whitelist"];
const ACCESS: &str = "pubsub#access_model";
const MAX_ITEMS: &str = "pubsub#max_items";
const PERSIST: &str = "pubsub#persist_items";
pub(crate) const NODE_CONFIG: &str = "http://jabber.org/protocol/pubsub#node_config";
pub(crate) const PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";

/// `pubsub#max_items`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MaxItems {
    Count(usize),
    Max,
}

impl MaxItems {
    fn limit(self) -> usize {
        match self {
            MaxItems::Count(n) => n.min(ITEMS_CAP),
            MaxItems::Max => ITEMS_CAP,
        }
    }

    fn text(self) -> String {
        match self {
            MaxItems::Count(n) => n.to_string(),
            MaxItems::Max => "max".into(),
        }
    }
}

/// A node's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) access_model: String,
    pub(crate) max_items: MaxItems,
    pub(crate) persist_items: bool,
    /// Every other field ever set, as given.
    pub(crate) other: BTreeMap<String, Vec<String>>,
}

impl Default for Config {
    /// Prosody's PEP defaults.
    fn default() -> Self {
        Self {
            access_model: "presence".into(),
            max_items: MaxItems::Count(1),
            persist_items: true,
            other: BTreeMap::new(),
        }
    }
}

/// One configuration field, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Setting {
    Access(String),
    MaxItems(MaxItems),
    Persist(bool),
    Other(String, Vec<String>),
}

fn boolean(value: &str) -> Option<bool> {
    match value {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// The settings of a submitted node_config or publish-options form. `Err` names the field
/// with a bad value or a wrong FORM_TYPE.
fn settings(form: &Element, form_type: &str) -> Result<Vec<Setting>, PepError> {
    let mut out = Vec::new();
    for (var, values) in xml::form_fields(form) {
        let value = values.first().map(|v| v.trim()).unwrap_or_default();
        out.push(match var.as_str() {
            "FORM_TYPE" => {
                if value != form_type {
                    return Err(PepError::BadRequest(
                        None,
                        format!("FORM_TYPE must be {form_type}"),
                    ));
                }
                continue;
            }
            ACCESS if ACCESS_MODELS.contains(&value) => Setting::Access(value.into()),
            MAX_ITEMS if value == "max" => Setting::MaxItems(MaxItems::Max),
            MAX_ITEMS => match value.parse::<usize>() {
                Ok(n) if n > 0 => Setting::MaxItems(MaxItems::Count(n)),
                _ => return Err(PepError::BadRequest(None, format!("bad value for {var}"))),
            },
            PERSIST => Setting::Persist(
                boolean(value)
                    .ok_or_else(|| PepError::BadRequest(None, format!("bad value for {var}")))?,
            ),
            ACCESS => return Err(PepError::BadRequest(None, format!("bad value for {var}"))),
            _ => Setting::Other(var, values),
        });
    }
    Ok(out)
}

impl Config {
    fn apply(&mut self, settings: &[Setting]) {
        for s in settings {
            match s {
                Setting::Access(a) => self.access_model = a.clone(),
                Setting::MaxItems(m) => self.max_items = *m,
                Setting::Persist(p) => self.persist_items = *p,
                Setting::Other(var, values) => {
                    self.other.insert(var.clone(), values.clone());
                }
            }
        }
    }

    /// The first requested setting the configuration does not have.
    fn mismatch(&self, settings: &[Setting]) -> Option<String> {
        settings.iter().find_map(|s| {
            let same = match s {
                Setting::Access(a) => self.access_model == *a,
                Setting::MaxItems(m) => self.max_items == *m,
                Setting::Persist(p) => self.persist_items == *p,
                Setting::Other(var, values) => self.other.get(var) == Some(values),
            };
            (!same).then(|| match s {
                Setting::Access(_) => ACCESS.to_owned(),
                Setting::MaxItems(_) => MAX_ITEMS.to_owned(),
                Setting::Persist(_) => PERSIST.to_owned(),
                Setting::Other(var, _) => var.clone(),
            })
        })
    }

    /// The configuration as a form (`type='form'`).
    pub(crate) fn to_form(&self) -> Element {
        let mut x = el("x", ns::DATA).with("type", "form");
        x.append_child(xml::field("FORM_TYPE", Some("hidden"), &[NODE_CONFIG]));
        let mut access = xml::field(ACCESS, Some("list-single"), &[&self.access_model]);
        for model in ACCESS_MODELS {
            access
                .append_child(el("option", ns::DATA).child(el("value", ns::DATA).with_text(model)));
        }
        x.append_child(access);
        x.append_child(xml::field(
            MAX_ITEMS,
            Some("text-single"),
            &[&self.max_items.text()],
        ));
        x.append_child(xml::field(
            PERSIST,
            Some("boolean"),
            &[if self.persist_items { "1" } else { "0" }],
        ));
        for (var, values) in &self.other {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            x.append_child(xml::field(var, None, &values));
        }
        x
    }

    /// Whether `reader` (a localpart) may read a node of `owner`.
    pub(crate) fn readable_by(&self, owner: &str, reader: &str) -> bool {
        owner == reader || self.access_model == "open"
    }
}

/// A node and its items, oldest first.
#[derive(Clone, Debug, Default)]
pub(crate) struct Node {
    pub(crate) config: Config,
    /// `(item id, payload)`.
    pub(crate) items: Vec<(String, Element)>,
}

impl Node {
    /// Stores an item (replacing one with the same id) and trims to `max_items`.
    fn store(&mut self, id: &str, payload: Element) {
        if !self.config.persist_items {
            return;
        }
        self.items.retain(|(i, _)| i != id);
        self.items.push((id.to_owned(), payload));
        self.trim();
    }

    fn trim(&mut self) {
        let limit = self.config.max_items.limit();
        if self.items.len() > limit {
            let excess = self.items.len() - limit;
            self.items.drain(..excess);
        }
    }

    /// `<item id>payload</item>` in the given namespace.
    pub(crate) fn item(id: &str, payload: &Element, namespace: &str) -> Element {
        el("item", namespace).with("id", id).child(payload.clone())
    }
}

/// Why a PEP request failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PepError {
    /// `bad-request`, with a pubsub#errors condition when there is one.
    BadRequest(Option<&'static str>, String),
    /// `conflict` + `precondition-not-met`.
    Precondition(String),
    /// The item does not exist.
    NoItem,
}

/// The item to publish: its id (or none: the server picks) and payload.
pub(crate) struct Publish {
    pub(crate) node: String,
    pub(crate) id: Option<String>,
    pub(crate) payload: Element,
    pub(crate) options: Option<Vec<Setting>>,
}

/// Parses `<pubsub><publish/><publish-options/></pubsub>`.
pub(crate) fn parse_publish(pubsub: &Element, publish: &Element) -> Result<Publish, PepError> {
    let node = publish
        .attr("node")
        .filter(|n| !n.is_empty())
        .ok_or(PepError::BadRequest(
            Some("nodeid-required"),
            "no node".into(),
        ))?
        .to_owned();
    let items: Vec<&Element> = publish
        .children()
        .filter(|c| c.is("item", ns::PUBSUB))
        .collect();
    let [item] = items.as_slice() else {
        return Err(PepError::BadRequest(
            Some("item-required"),
            "exactly one item".into(),
        ));
    };
    let payloads: Vec<&Element> = item.children().collect();
    let [payload] = payloads.as_slice() else {
        return Err(PepError::BadRequest(
            Some("invalid-payload"),
            "exactly one payload".into(),
        ));
    };
    let options = match pubsub
        .get_child("publish-options", ns::PUBSUB)
        .and_then(|o| o.get_child("x", ns::DATA))
    {
        Some(form) => Some(settings(form, PUBLISH_OPTIONS)?),
        None => None,
    };
    Ok(Publish {
        node,
        id: item.attr("id").filter(|i| !i.is_empty()).map(str::to_owned),
        payload: (*payload).clone(),
        options,
    })
}

/// Publishes into `nodes`: creates the node with the requested options on first publish,
/// checks them as preconditions afterwards. Returns the item id and the node's access model.
pub(crate) fn publish(
    nodes: &mut BTreeMap<String, Node>,
    request: Publish,
    fresh_id: impl FnOnce() -> String,
) -> Result<(String, String), PepError> {
    let id = request.id.unwrap_or_else(fresh_id);
    let node = match nodes.get_mut(&request.node) {
        Some(node) => {
            if let Some(field) = request
                .options
                .as_deref()
                .and_then(|o| node.config.mismatch(o))
            {
                return Err(PepError::Precondition(field));
            }
            node
        }
        None => {
            let mut config = Config::default();
            if let Some(o) = &request.options {
                config.apply(o);
            }
            nodes.entry(request.node.clone()).or_insert(Node {
                config,
                items: Vec::new(),
            })
        }
    };
    node.store(&id, request.payload);
    Ok((id, node.config.access_model.clone()))
}

/// Applies a submitted node_config form (`type='cancel'` changes nothing).
pub(crate) fn configure(node: &mut Node, form: &Element) -> Result<(), PepError> {
    if form.attr("type") == Some("cancel") {
        return Ok(());
    }
    let s = settings(form, NODE_CONFIG)?;
    node.config.apply(&s);
    node.trim();
    Ok(())
}

/// The items a retrieval asks for: all, the newest `max_items`, or by id (in node order).
pub(crate) fn select<'a>(node: &'a Node, items: &Element) -> Vec<&'a (String, Element)> {
    let wanted: Vec<&str> = items
        .children()
        .filter(|c| c.is("item", ns::PUBSUB))
        .filter_map(|c| c.attr("id"))
        .collect();
    if !wanted.is_empty() {
        return node
            .items
            .iter()
            .filter(|(id, _)| wanted.contains(&id.as_str()))
            .collect();
    }
    let max = items
        .attr("max_items")
        .and_then(|m| m.trim().parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    let skip = node.items.len().saturating_sub(max);
    node.items.iter().skip(skip).collect()
}

/// Removes an item.
pub(crate) fn retract(node: &mut Node, id: &str) -> Result<(), PepError> {
    let before = node.items.len();
    node.items.retain(|(i, _)| i != id);
    if node.items.len() == before {
        return Err(PepError::NoItem);
    }
    Ok(())
}

/// `<message type='headline'><event><…/></event></message>` from `owner` to `to`.
pub(crate) fn event_message(owner: &str, to: &str, id: String, content: Element) -> Element {
    el("message", ns::CLIENT)
        .with("from", owner)
        .with("to", to)
        .with("type", "headline")
        .with("id", id)
        .child(el("event", ns::PUBSUB_EVENT).child(content))
}

/// The `<items node><item id>payload</item></items>` of a notification.
pub(crate) fn items_event(node: &str, id: &str, payload: &Element) -> Element {
    el("items", ns::PUBSUB_EVENT)
        .with("node", node)
        .child(Node::item(id, payload, ns::PUBSUB_EVENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pubsub(xml: &str) -> Element {
        xml.parse().unwrap()
    }

    fn publish_req(options: &str) -> Element {
        pubsub(&format!(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <publish node='n'><item id='current'><p xmlns='urn:x'/></item></publish>{options}</pubsub>"
        ))
    }

    fn options(access: &str, max: Option<&str>) -> String {
        let max = max
            .map(|m| format!("<field var='pubsub#max_items'><value>{m}</value></field>"))
            .unwrap_or_default();
        format!(
            "<publish-options><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>{PUBLISH_OPTIONS}</value></field>\
             <field var='pubsub#access_model'><value>{access}</value></field>\
             <field var='pubsub#persist_items'><value>true</value></field>{max}</x></publish-options>"
        )
    }

    fn run(
        nodes: &mut BTreeMap<String, Node>,
        req: &Element,
    ) -> Result<(String, String), PepError> {
        let publish = req.get_child("publish", ns::PUBSUB).unwrap();
        let p = parse_publish(req, publish)?;
        super::publish(nodes, p, || "generated".into())
    }

    #[test]
    fn options_create_then_must_match() {
        let mut nodes = BTreeMap::new();
        assert_eq!(
            run(&mut nodes, &publish_req(&options("open", None))).unwrap(),
            ("current".to_owned(), "open".to_owned())
        );
        // Same options again: fine; `1` and `true` are the same boolean.
        run(&mut nodes, &publish_req(&options("open", None))).unwrap();
        assert_eq!(
            run(&mut nodes, &publish_req(&options("whitelist", None))),
            Err(PepError::Precondition(ACCESS.into()))
        );
        assert_eq!(
            run(&mut nodes, &publish_req(&options("open", Some("max")))),
            Err(PepError::Precondition(MAX_ITEMS.into()))
        );
        // Without options, any node takes the item.
        run(&mut nodes, &publish_req("")).unwrap();
        assert_eq!(nodes["n"].items.len(), 1);
    }

    #[test]
    fn default_nodes_keep_one_item_and_max_keeps_many() {
        let mut nodes = BTreeMap::new();
        for id in ["a", "b", "c"] {
            let req = pubsub(&format!(
                "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='d'><item id='{id}'><p xmlns='urn:x'/></item></publish></pubsub>"
            ));
            run(&mut nodes, &req).unwrap();
        }
        assert_eq!(nodes["d"].config.access_model, "presence");
        assert_eq!(nodes["d"].items.len(), 1);
        let form: Element = format!(
            "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>{NODE_CONFIG}</value></field>\
             <field var='pubsub#max_items'><value>max</value></field></x>"
        )
        .parse()
        .unwrap();
        configure(nodes.get_mut("d").unwrap(), &form).unwrap();
        for id in ["x", "y", "x"] {
            let req = pubsub(&format!(
                "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='d'><item id='{id}'><p xmlns='urn:x'/></item></publish></pubsub>"
            ));
            run(&mut nodes, &req).unwrap();
        }
        let ids: Vec<&str> = nodes["d"].items.iter().map(|(i, _)| i.as_str()).collect();
        assert_eq!(ids, ["c", "y", "x"]);
        let get: Element =
            "<items xmlns='http://jabber.org/protocol/pubsub' node='d' max_items='2'/>"
                .parse()
                .unwrap();
        let got: Vec<&str> = select(&nodes["d"], &get)
            .iter()
            .map(|(i, _)| i.as_str())
            .collect();
        assert_eq!(got, ["y", "x"]);
    }

    #[test]
    fn bad_requests_are_reported() {
        let mut nodes = BTreeMap::new();
        let no_node = pubsub(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish><item/></publish></pubsub>",
        );
        assert!(matches!(
            run(&mut nodes, &no_node),
            Err(PepError::BadRequest(Some("nodeid-required"), _))
        ));
        let no_payload = pubsub("<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'><item id='1'/></publish></pubsub>");
        assert!(matches!(
            run(&mut nodes, &no_payload),
            Err(PepError::BadRequest(..))
        ));
        assert!(matches!(
            run(&mut nodes, &publish_req(&options("everyone", None))),
            Err(PepError::BadRequest(..))
        ));
        assert!(nodes.is_empty());
    }
}
