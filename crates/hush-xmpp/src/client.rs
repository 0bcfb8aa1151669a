//! One logged-in XMPP session and the OMEMO operations on it.

use std::net::IpAddr;
use std::time::Duration;

use futures::StreamExt;
use hush_proto::{Bundle, DeviceList, Element, EncryptedElement, Suite};
use tokio_xmpp::connect::DnsConfig;
use tokio_xmpp::parsers::jid::{BareJid, Jid};
use tokio_xmpp::parsers::message::{Message, MessageType};
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::xmlstream::Timeouts;
use tokio_xmpp::{Client, Event, IqRequest, IqResponse, Stanza};

use crate::error::{Result, XmppError};
use crate::pep;

/// How long to wait for the server before giving up on a request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// `host:port` of the server; `None` looks up the JID's domain.
    pub server: Option<String>,
    /// Allow an unencrypted connection, only to a loopback address (local test servers).
    pub insecure_loopback: bool,
    /// How long login may take.
    pub timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            server: None,
            insecure_loopback: false,
            timeout: Duration::from_secs(30),
        }
    }
}

/// An encrypted message as received.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The sender's bare JID.
    pub from: BareJid,
    /// The `<encrypted/>` element.
    pub encrypted: EncryptedElement,
    /// XEP-0359 ids, to recognise copies (offline, Carbons, MAM).
    pub ids: hush_store::MessageIds,
}

const SID: &str = "urn:xmpp:sid:0";

fn message_ids(m: &Message, own: &BareJid) -> hush_store::MessageIds {
    let mut ids = hush_store::MessageIds::default();
    for p in &m.payloads {
        if p.is("origin-id", SID) {
            ids.origin_id = p.attr("id").map(str::to_owned);
        } else if p.is("stanza-id", SID) && p.attr("by") == Some(own.as_str()) {
            // Only ids our own archive assigned are trustworthy for dedup.
            ids.archive = Some(own.to_string());
            ids.stanza_id = p.attr("id").map(str::to_owned);
        }
    }
    ids
}

/// A logged-in session.
pub struct XmppClient {
    client: Client,
    jid: BareJid,
}

impl core::fmt::Debug for XmppClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("XmppClient")
            .field("jid", &self.jid)
            .finish_non_exhaustive()
    }
}

fn is_loopback(server: &str) -> bool {
    let host = server
        .rsplit_once(':')
        .map_or(server, |(h, _)| h)
        .trim_matches(['[', ']']);
    host.parse::<IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

fn condition(e: &tokio_xmpp::parsers::stanza_error::StanzaError) -> String {
    format!("{:?}", e.defined_condition)
}

impl XmppClient {
    /// Logs in and sends initial presence. Fails after `options.timeout` instead of retrying
    /// forever.
    pub async fn connect(jid: &str, password: &str, options: &ConnectOptions) -> Result<Self> {
        let bare: BareJid = jid.parse().map_err(|_| XmppError::BadJid(jid.to_owned()))?;
        let server = options
            .server
            .clone()
            .unwrap_or_else(|| format!("{}:5222", bare.domain()));
        let mut client = if options.insecure_loopback {
            if !is_loopback(&server) {
                return Err(XmppError::InsecureNotLoopback(server));
            }
            Client::new_plaintext(
                bare.clone(),
                password.to_owned(),
                DnsConfig::addr(&server),
                Timeouts::default(),
            )
        } else {
            let (host, port) = server.rsplit_once(':').unwrap_or((&server, "5222"));
            let port = port.parse().unwrap_or(5222);
            Client::new_starttls(
                bare.clone(),
                password.to_owned(),
                DnsConfig::no_srv(host, port),
                Timeouts::default(),
            )
        };
        let online = tokio::time::timeout(options.timeout, async {
            while let Some(event) = client.next().await {
                match event {
                    Event::Online { .. } => return Ok(()),
                    Event::Disconnected(e) => return Err(XmppError::Disconnected(e.to_string())),
                    Event::Stanza(_) => {}
                }
            }
            Err(XmppError::Disconnected("stream ended".into()))
        })
        .await;
        match online {
            Ok(r) => r?,
            Err(_) => {
                return Err(XmppError::ConnectTimeout {
                    jid: jid.to_owned(),
                    server,
                    seconds: options.timeout.as_secs(),
                });
            }
        }
        client
            .send_stanza(Presence::new(PresenceType::None).into())
            .await?;
        Ok(Self { client, jid: bare })
    }

    /// Our bare JID.
    pub fn jid(&self) -> &BareJid {
        &self.jid
    }

    async fn request(
        &mut self,
        to: Option<Jid>,
        req: IqRequest,
        what: &str,
    ) -> Result<Option<Element>> {
        let token = self.client.send_iq(to, req).await;
        match tokio::time::timeout(REQUEST_TIMEOUT, token).await {
            Err(_) => Err(XmppError::Timeout(what.to_owned())),
            Ok(Err(e)) => Err(XmppError::Disconnected(format!("{e:?}"))),
            Ok(Ok(IqResponse::Result(payload))) => Ok(payload),
            Ok(Ok(IqResponse::Error(e))) => Err(XmppError::Refused {
                what: what.to_owned(),
                condition: condition(&e),
            }),
        }
    }

    /// Publishes an item with the access model OMEMO needs (`open`). If the node exists with a
    /// different configuration, the server refuses the publish-options; then the node is
    /// reconfigured and the item published again (XEP-0384 §"Server-side requirements").
    async fn publish(
        &mut self,
        node: &str,
        item_id: &str,
        payload: Element,
        max_items: bool,
    ) -> Result<()> {
        let what = format!("publishing {node}");
        match self
            .request(
                None,
                IqRequest::Set(pep::publish(
                    node,
                    item_id,
                    payload.clone(),
                    true,
                    max_items,
                )),
                &what,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(XmppError::Refused { .. }) => {
                self.request(
                    None,
                    IqRequest::Set(pep::configure(node, max_items)),
                    &format!("configuring {node}"),
                )
                .await?;
                self.request(
                    None,
                    IqRequest::Set(pep::publish(node, item_id, payload, false, max_items)),
                    &what,
                )
                .await?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn fetch(
        &mut self,
        jid: &BareJid,
        node: &str,
        item_id: Option<&str>,
    ) -> Result<Vec<Element>> {
        let what = format!("fetching {node} of {jid}");
        let result = self
            .request(
                Some(jid.clone().into()),
                IqRequest::Get(pep::fetch(node, item_id)),
                &what,
            )
            .await;
        let nothing = || XmppError::NothingPublished {
            jid: jid.to_string(),
            node: node.to_owned(),
        };
        match result {
            Ok(Some(el)) => {
                let found: Vec<Element> = pep::payloads(&el).into_iter().cloned().collect();
                if found.is_empty() {
                    Err(nothing())
                } else {
                    Ok(found)
                }
            }
            Ok(None) => Err(nothing()),
            Err(XmppError::Refused { condition, .. })
                if condition.contains("ItemNotFound") || condition.contains("Forbidden") =>
            {
                Err(nothing())
            }
            Err(e) => Err(e),
        }
    }

    /// Publishes our device list in its suite.
    pub async fn publish_device_list(&mut self, list: &DeviceList) -> Result<()> {
        self.publish(
            list.suite.devices_node(),
            "current",
            list.to_element(),
            false,
        )
        .await
    }

    /// Publishes a bundle in its suite.
    pub async fn publish_bundle(&mut self, bundle: &Bundle) -> Result<()> {
        let (node, item) = bundle.suite.bundle_location(bundle.device_id);
        let item = item.unwrap_or_else(|| "current".to_owned());
        // OMEMO:2 keeps one item per device on a single node: it needs `max_items=max`.
        self.publish(
            &node,
            &item,
            bundle.to_element(),
            bundle.suite == Suite::Omemo2,
        )
        .await
    }

    /// Fetches a contact's device list.
    pub async fn device_list(&mut self, jid: &BareJid, suite: Suite) -> Result<DeviceList> {
        let items = self
            .fetch(jid, suite.devices_node(), Some("current"))
            .await?;
        Ok(DeviceList::from_element(&items[0])?)
    }

    /// Fetches one device's bundle (its signature is checked when a session is started).
    pub async fn bundle(&mut self, jid: &BareJid, suite: Suite, device_id: u32) -> Result<Bundle> {
        let (node, item) = suite.bundle_location(device_id);
        let items = self
            .fetch(jid, &node, Some(item.as_deref().unwrap_or("current")))
            .await?;
        Ok(Bundle::from_element(&items[0], device_id)?)
    }

    /// Sends an encrypted message. The only text in clear is a fixed fallback saying the
    /// message is encrypted; nothing of the user's text.
    pub async fn send_encrypted(
        &mut self,
        to: &BareJid,
        encrypted: &EncryptedElement,
        origin_id: &str,
    ) -> Result<()> {
        let mut m = Message::new(Some(to.clone().into()));
        m.id = Some(tokio_xmpp::parsers::message::Id(origin_id.to_owned()));
        m.payloads.push(
            Element::builder("origin-id", SID)
                .attr(
                    tokio_xmpp::minidom::rxml::NcName::try_from("id").expect("valid"),
                    origin_id,
                )
                .build(),
        );
        m.type_ = MessageType::Chat;
        m.bodies.insert(
            Default::default(),
            "This message is encrypted with OMEMO; your client cannot decrypt it.".to_owned(),
        );
        m.payloads.push(encrypted.to_element());
        m.payloads
            .push(Element::builder("store", "urn:xmpp:hints").build());
        m.payloads.push(
            Element::builder("encryption", "urn:xmpp:eme:0")
                .attr(
                    tokio_xmpp::minidom::rxml::NcName::try_from("namespace").expect("valid"),
                    encrypted.suite.namespace(),
                )
                .build(),
        );
        self.client.send_stanza(m.into()).await?;
        Ok(())
    }

    /// Waits for the next encrypted message (other stanzas are skipped), up to `timeout`.
    /// Returns `None` on timeout.
    pub async fn next_encrypted(&mut self, timeout: Duration) -> Result<Option<Incoming>> {
        let wait = async {
            while let Some(event) = self.client.next().await {
                match event {
                    Event::Stanza(Stanza::Message(m)) => {
                        let Some(from) = m.from.as_ref().map(|f| f.to_bare()) else {
                            continue;
                        };
                        for p in &m.payloads {
                            if p.name() == "encrypted" && Suite::from_namespace(&p.ns()).is_ok() {
                                let encrypted = EncryptedElement::from_element(p)?;
                                let ids = message_ids(&m, &self.jid);
                                return Ok(Some(Incoming {
                                    from,
                                    encrypted,
                                    ids,
                                }));
                            }
                        }
                    }
                    Event::Disconnected(e) => return Err(XmppError::Disconnected(e.to_string())),
                    _ => {}
                }
            }
            Err(XmppError::Disconnected("stream ended".into()))
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => Ok(None),
        }
    }

    /// Makes sure everything sent so far reached the server: the server answers IQs in order,
    /// so once it answered a ping, it has every stanza sent before it.
    pub async fn flush(&mut self) -> Result<()> {
        let ping = Element::builder("ping", "urn:xmpp:ping").build();
        self.request(None, IqRequest::Get(ping), "ping")
            .await
            .map(|_| ())
    }

    /// Flushes, then closes the stream politely.
    pub async fn close(mut self) -> Result<()> {
        self.flush().await?;
        self.client
            .send_end()
            .await
            .map_err(|e| XmppError::Disconnected(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_loopback_counts_as_loopback() {
        assert!(super::is_loopback("127.0.0.1:5222"));
        assert!(super::is_loopback("127.8.9.1:1"));
        assert!(super::is_loopback("[::1]:5222"));
        assert!(!super::is_loopback("10.0.0.1:5222"));
        assert!(!super::is_loopback("example.org:5222"));
        assert!(!super::is_loopback("localhost.evil.com:5222"));
    }
}
