//! Finding an account's server from its domain (RFC 6120 §3.2.1, XEP-0368): the DNS SRV
//! records `_xmpps-client._tcp.DOMAIN` (direct TLS) and `_xmpp-client._tcp.DOMAIN` (STARTTLS)
//! are merged into one list, ordered by priority (lowest first) and, within a priority, by
//! weight (highest first — a fixed order where RFC 2782 picks at random, so that which server
//! is tried first does not change from one login to the next). A domain with neither record
//! is tried at its own name on port 5222 with STARTTLS. A single record whose target is `.`
//! says the service is not offered (RFC 2782), and no fallback is tried for that kind.
//!
//! The certificate is checked against the account's domain, never against the record's target
//! (RFC 6125, XEP-0368 §4): a DNS answer can send us elsewhere, but not make us trust it.

use std::fmt;
use std::net::SocketAddr;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use tokio::net::TcpStream;

/// The port a domain without SRV records is tried on (RFC 6120 §3.2.1).
pub(crate) const DEFAULT_PORT: u16 = 5222;

/// How a connection to a server is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Security {
    /// TLS from the first byte (XEP-0368).
    DirectTls,
    /// A plaintext stream that upgrades with STARTTLS before anything else (RFC 6120 §5).
    StartTls,
}

impl fmt::Display for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Security::DirectTls => "direct TLS",
            Security::StartTls => "STARTTLS",
        })
    }
}

/// One place a domain's server may be reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// The host name (or address) to connect to.
    pub(crate) host: String,
    /// The port.
    pub(crate) port: u16,
    /// How to secure the connection.
    pub(crate) security: Security,
    priority: u16,
    weight: u16,
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} ({})", self.host, self.port, self.security)
    }
}

/// The resolver to ask: the system's (`/etc/resolv.conf`), or the name server at `server`.
pub(crate) fn resolver(server: Option<SocketAddr>) -> std::io::Result<TokioResolver> {
    let builder = match server {
        None => TokioResolver::builder_tokio().map_err(std::io::Error::other)?,
        Some(addr) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            let name_server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![name_server]),
                TokioRuntimeProvider::default(),
            )
        }
    };
    builder.build().map_err(std::io::Error::other)
}

/// Where `domain`'s server may be reached, in the order to try (see the module docs).
pub(crate) async fn candidates(resolver: &TokioResolver, domain: &str) -> Vec<Candidate> {
    let mut found = Vec::new();
    let mut refused = Vec::new();
    for (service, security) in [
        ("_xmpps-client._tcp", Security::DirectTls),
        ("_xmpp-client._tcp", Security::StartTls),
    ] {
        // Fully qualified: no search domain is appended to it.
        let name = format!("{service}.{domain}.");
        let records = match resolver.srv_lookup(name.as_str()).await {
            Ok(lookup) => lookup,
            // No such name, no record, or no answer: nothing of this kind.
            Err(e) => {
                log::debug!("no {name} SRV records: {e}");
                continue;
            }
        };
        let mut of_this_kind = Vec::new();
        for record in records.answers() {
            let RData::SRV(srv) = &record.data else {
                continue;
            };
            let target = srv.target.to_ascii();
            let target = target.trim_end_matches('.');
            if target.is_empty() {
                // "The service is decidedly not available at this domain."
                refused.push(security);
                continue;
            }
            of_this_kind.push(Candidate {
                host: target.to_owned(),
                port: srv.port,
                security,
                priority: srv.priority,
                weight: srv.weight,
            });
        }
        found.extend(of_this_kind);
    }
    // Stable: a record of the same priority and weight keeps its place (direct TLS first).
    found.sort_by_key(|c| (c.priority, std::cmp::Reverse(c.weight)));
    if found.is_empty() && !refused.contains(&Security::StartTls) {
        found.push(Candidate {
            host: domain.to_owned(),
            port: DEFAULT_PORT,
            security: Security::StartTls,
            priority: 0,
            weight: 0,
        });
    }
    found
}

/// A TCP connection to `host:port`: each of its addresses in turn (an address given as such
/// is used as it is).
pub(crate) async fn tcp(
    resolver: &TokioResolver,
    host: &str,
    port: u16,
) -> std::io::Result<TcpStream> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return TcpStream::connect((ip, port)).await;
    }
    let name = format!("{host}.");
    let addresses = resolver.lookup_ip(name.as_str()).await.map_err(|e| {
        std::io::Error::other(if e.is_nx_domain() || e.is_no_records_found() {
            format!("DNS has no address for {host}")
        } else {
            format!("cannot resolve {host}: {e}")
        })
    })?;
    let mut last = None;
    for ip in addresses.iter() {
        match TcpStream::connect((ip, port)).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("{host} has no address"))))
}

/// Every place tried to reach a domain's server, and why each failed: the error of a login
/// that found none.
#[derive(Debug)]
pub(crate) struct NoServer {
    /// The account's domain.
    pub(crate) domain: String,
    /// Each candidate tried, with its failure.
    pub(crate) attempts: Vec<(Candidate, String)>,
}

impl fmt::Display for NoServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.attempts.is_empty() {
            return write!(
                f,
                "{} says in DNS that it offers no XMPP service (SRV target \".\")",
                self.domain
            );
        }
        write!(f, "no server of {} could be reached: ", self.domain)?;
        for (i, (candidate, why)) in self.attempts.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{candidate}: {why}")?;
        }
        Ok(())
    }
}

impl std::error::Error for NoServer {}
