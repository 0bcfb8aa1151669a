//! A tiny authoritative DNS server for the tests: SRV and A records from a fixed table, on a
//! loopback port, so that a client's server discovery (RFC 6120 § 3.2: `_xmpp-client._tcp`
//! SRV records, then the target's address) can be tested without the system's resolver.
//!
//! [`DnsServer::start`] serves a table of [`Answer`]s over UDP and TCP on the same port of
//! 127.0.0.1; [`DnsServer::address`] is what to configure as the name server, and
//! [`DnsServer::queries`] counts what it answered. It runs on plain threads with blocking std
//! sockets, so it works from a `#[test]` as well as from inside a tokio runtime, and it stops
//! when dropped.
//!
//! What it answers, for a query with one question:
//!
//! * the table's entries whose name is the question's name (case-insensitively, a trailing dot
//!   or not) and whose type is the question's type (SRV or A), with a TTL of 60 seconds;
//! * no records and NOERROR if the name is in the table but not with that type (AAAA, MX, ...);
//! * NXDOMAIN if the name is not in the table at all.
//!
//! Every answer is authoritative, offers recursion, and carries the query's id and question.
//! A query with no or several questions gets FORMERR, another opcode NOTIMP; a packet that is
//! not a DNS query is ignored. A UDP answer longer than the client accepts (512 bytes, or what
//! its EDNS record says) is sent truncated, without records, as DNS does.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record};

/// The TTL of every record served.
const TTL: u32 = 60;

/// How often the server's threads look whether it was dropped.
const POLL: Duration = Duration::from_millis(20);

/// How many random UDP ports to try for one whose number is free for TCP as well.
const BIND_ATTEMPTS: usize = 50;

/// One answer the responder gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An SRV record for `name` (e.g. "_xmpp-client._tcp.localhost"): priority, weight, port,
    /// target host.
    Srv {
        /// The owner name, e.g. `_xmpp-client._tcp.localhost` (a trailing dot is optional).
        name: String,
        /// Lower is tried first.
        priority: u16,
        /// Among equal priorities, the share of connections this target should get.
        weight: u16,
        /// The port the service listens on at `target`.
        port: u16,
        /// The host that serves it (a trailing dot is optional); `.` means "no service".
        target: String,
    },
    /// An A record for `name` (e.g. "localhost") -> IPv4 address.
    A {
        /// The owner name, e.g. `localhost` (a trailing dot is optional).
        name: String,
        /// The address it has.
        addr: Ipv4Addr,
    },
}

/// One row of the served table: a fully qualified owner name and its record data.
struct Entry {
    name: Name,
    rdata: RData,
}

impl Entry {
    fn from_answer(answer: Answer) -> Self {
        match answer {
            Answer::Srv {
                name,
                priority,
                weight,
                port,
                target,
            } => Self {
                name: fqdn(&name),
                rdata: RData::SRV(SRV::new(priority, weight, port, fqdn(&target))),
            },
            Answer::A { name, addr } => Self {
                name: fqdn(&name),
                rdata: RData::A(A(addr)),
            },
        }
    }
}

/// `name` as a fully qualified domain name; a test's typo is a failed test.
fn fqdn(name: &str) -> Name {
    let mut parsed =
        Name::from_ascii(name).unwrap_or_else(|e| panic!("not a DNS name: {name:?}: {e}"));
    parsed.set_fqdn(true);
    parsed
}

/// What the server's threads share.
struct Shared {
    table: Vec<Entry>,
    queries: AtomicUsize,
    stop: AtomicBool,
}

impl Shared {
    /// The encoded response to `packet`, or `None` if it is to be ignored. Over `udp` the
    /// response is truncated to what the client accepts; over TCP it is whole. Counts the query
    /// as answered before the caller sends the response, so that a client that has its answer
    /// also sees it counted.
    fn respond(&self, packet: &[u8], udp: bool) -> Option<Vec<u8>> {
        let query = Message::from_vec(packet).ok()?;
        if query.metadata.message_type != MessageType::Query {
            return None;
        }
        let mut response = Message::response(query.metadata.id, query.metadata.op_code);
        response.metadata.authoritative = true;
        response.metadata.recursion_desired = query.metadata.recursion_desired;
        response.metadata.recursion_available = true;
        response.metadata.checking_disabled = query.metadata.checking_disabled;
        response.add_queries(query.queries.iter().cloned());
        if query.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(4096);
            response.set_edns(edns);
        }

        if query.metadata.op_code != OpCode::Query {
            response.metadata.response_code = ResponseCode::NotImp;
        } else if let [question] = query.queries.as_slice() {
            let mut asked = question.name().clone();
            asked.set_fqdn(true);
            let mut known = false;
            for entry in self.table.iter().filter(|entry| entry.name == asked) {
                known = true;
                if entry.rdata.record_type() == question.query_type() {
                    response.add_answer(Record::from_rdata(
                        asked.clone(),
                        TTL,
                        entry.rdata.clone(),
                    ));
                }
            }
            if !known {
                response.metadata.response_code = ResponseCode::NXDomain;
            }
        } else {
            response.metadata.response_code = ResponseCode::FormErr;
        }

        let mut bytes = response.to_vec().ok()?;
        if udp && bytes.len() > usize::from(query.max_payload()) {
            response.answers.clear();
            response.metadata.truncation = true;
            bytes = response.to_vec().ok()?;
        }
        self.queries.fetch_add(1, Ordering::SeqCst);
        Some(bytes)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// A DNS server on 127.0.0.1 (a random port, UDP and TCP on the same port number) answering
/// from a fixed table, until dropped.
///
/// Plain threads and blocking sockets: it needs no tokio runtime and does not mind one.
/// Dropping it stops and joins its threads (within a few tens of milliseconds) and frees the
/// port.
pub struct DnsServer {
    address: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Starts serving `answers` on background threads. Works when called from inside a tokio
    /// runtime as well as from a plain `#[test]` without one.
    pub fn start(answers: Vec<Answer>) -> Self {
        let (udp, tcp) = bind_pair();
        let address = udp.local_addr().unwrap();
        udp.set_read_timeout(Some(POLL)).unwrap();
        tcp.set_nonblocking(true).unwrap();
        let shared = Arc::new(Shared {
            table: answers.into_iter().map(Entry::from_answer).collect(),
            queries: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let threads = vec![
            spawn("hush-test-dns-udp", {
                let shared = Arc::clone(&shared);
                move || serve_udp(&udp, &shared)
            }),
            spawn("hush-test-dns-tcp", {
                let shared = Arc::clone(&shared);
                move || serve_tcp(&tcp, &shared)
            }),
        ];
        Self {
            address,
            shared,
            threads,
        }
    }

    /// The address to use as name server (127.0.0.1:PORT), for UDP and TCP alike.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// How many queries it answered so far, over UDP and TCP (for tests that check the client
    /// asked). Ignored packets are not counted.
    pub fn queries(&self) -> usize {
        self.shared.queries.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            // A thread that panicked has nothing more to say; panicking in drop would abort.
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("address", &self.address)
            .field("queries", &self.queries())
            .finish_non_exhaustive()
    }
}

/// A UDP socket on a random loopback port and a TCP listener on the same port number.
fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..BIND_ATTEMPTS {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            return (udp, tcp);
        }
    }
    panic!("no loopback port free for both UDP and TCP in {BIND_ATTEMPTS} attempts");
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
        .unwrap()
}

/// Answers datagrams until the server is dropped.
fn serve_udp(socket: &UdpSocket, shared: &Shared) {
    let mut buf = vec![0u8; 65_535];
    while !shared.stopped() {
        // An error is the read timeout (a look at `stop`) or about an earlier datagram (e.g.
        // an ICMP "port unreachable" from a client that has gone): carry on.
        if let Ok((len, from)) = socket.recv_from(&mut buf) {
            if let Some(response) = shared.respond(&buf[..len], true) {
                let _ = socket.send_to(&response, from);
            }
        }
    }
}

/// Accepts connections until the server is dropped; each is served on a thread of its own,
/// and all are joined before this returns.
fn serve_tcp(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stopped() {
        match listener.accept() {
            Ok((stream, _)) => {
                connections.retain(|connection| !connection.is_finished());
                let shared = Arc::clone(shared);
                connections.push(spawn("hush-test-dns-conn", move || {
                    serve_connection(stream, &shared);
                }));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => std::thread::sleep(POLL),
        }
    }
    for connection in connections {
        let _ = connection.join();
    }
}

/// Answers length-prefixed messages on one connection until the client closes it, sends
/// something unreadable, or the server is dropped.
fn serve_connection(mut stream: TcpStream, shared: &Shared) {
    // Some platforms hand out accepted sockets non-blocking like their listener.
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(POLL)).is_err()
        || stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .is_err()
    {
        return;
    }
    loop {
        let mut prefix = [0u8; 2];
        if !read_full(&mut stream, &mut prefix, shared) {
            return;
        }
        let mut packet = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        if !read_full(&mut stream, &mut packet, shared) {
            return;
        }
        let Some(response) = shared.respond(&packet, false) else {
            // Not a query: the stream cannot be trusted to be in step any more.
            return;
        };
        let Ok(len) = u16::try_from(response.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(2 + response.len());
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&response);
        if stream.write_all(&framed).is_err() {
            return;
        }
    }
}

/// Fills `buf` from `stream`, looking at `stop` at every read timeout; false on end of stream,
/// an error, or the server dropped.
fn read_full(stream: &mut TcpStream, buf: &mut [u8], shared: &Shared) -> bool {
    let mut filled = 0;
    while filled < buf.len() {
        if shared.stopped() {
            return false;
        }
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return false,
            Ok(read) => filled += read,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::RecordType;

    fn table() -> Vec<Answer> {
        vec![
            Answer::Srv {
                name: "_xmpp-client._tcp.localhost".to_owned(),
                priority: 10,
                weight: 5,
                port: 5222,
                target: "xmpp.localhost".to_owned(),
            },
            Answer::Srv {
                name: "_xmpp-client._tcp.localhost.".to_owned(),
                priority: 20,
                weight: 0,
                port: 5223,
                target: "backup.localhost.".to_owned(),
            },
            Answer::A {
                name: "xmpp.localhost".to_owned(),
                addr: Ipv4Addr::LOCALHOST,
            },
            Answer::A {
                name: "localhost".to_owned(),
                addr: Ipv4Addr::new(127, 0, 0, 2),
            },
        ]
    }

    fn query(id: u16, name: &str, kind: RecordType) -> Message {
        let mut message = Message::new(id, MessageType::Query, OpCode::Query);
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        message
    }

    fn client() -> UdpSocket {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        socket
    }

    fn exchange(server: &DnsServer, message: &Message) -> Message {
        let socket = client();
        socket
            .send_to(&message.to_vec().unwrap(), server.address())
            .unwrap();
        let mut buf = [0u8; 4096];
        let (len, _) = socket.recv_from(&mut buf).unwrap();
        Message::from_vec(&buf[..len]).unwrap()
    }

    fn ask(server: &DnsServer, name: &str, kind: RecordType) -> Message {
        let question = query(0x4a1f, name, kind);
        let response = exchange(server, &question);
        assert_eq!(response.metadata.id, 0x4a1f);
        assert_eq!(response.metadata.message_type, MessageType::Response);
        assert!(response.metadata.authoritative);
        assert!(response.metadata.recursion_available);
        assert!(!response.metadata.truncation);
        // As it went on the wire, where every name is fully qualified.
        let sent = Message::from_vec(&question.to_vec().unwrap()).unwrap();
        assert_eq!(response.queries, sent.queries);
        response
    }

    fn srv(record: &Record) -> &SRV {
        match &record.data {
            RData::SRV(srv) => srv,
            other => panic!("not an SRV record: {other:?}"),
        }
    }

    #[test]
    fn srv_answers_are_every_matching_entry() {
        let server = DnsServer::start(table());
        assert!(server.address().ip().is_loopback());
        let response = ask(&server, "_XMPP-Client._tcp.LocalHost.", RecordType::SRV);
        assert_eq!(response.metadata.response_code, ResponseCode::NoError);
        assert_eq!(response.answers.len(), 2);
        for record in &response.answers {
            assert!(record.name.is_fqdn());
            assert!(record.name == fqdn("_xmpp-client._tcp.localhost"));
            assert_eq!(record.record_type(), RecordType::SRV);
            assert_eq!(record.ttl, TTL);
        }
        let first = srv(&response.answers[0]);
        assert_eq!((first.priority, first.weight, first.port), (10, 5, 5222));
        assert!(first.target.is_fqdn());
        assert_eq!(first.target.to_ascii(), "xmpp.localhost.");
        let second = srv(&response.answers[1]);
        assert_eq!((second.priority, second.weight, second.port), (20, 0, 5223));
        assert_eq!(second.target.to_ascii(), "backup.localhost.");
    }

    #[test]
    fn a_answers_the_address_whatever_the_case() {
        let server = DnsServer::start(table());
        let response = ask(&server, "xmpp.localhost", RecordType::A);
        assert_eq!(response.metadata.response_code, ResponseCode::NoError);
        assert_eq!(response.answers.len(), 1);
        let record = &response.answers[0];
        assert!(record.name.is_fqdn());
        assert_eq!(record.ttl, TTL);
        assert_eq!(record.data, RData::A(A(Ipv4Addr::LOCALHOST)));

        let response = ask(&server, "LOCALHOST.", RecordType::A);
        assert_eq!(response.answers.len(), 1);
        assert_eq!(
            response.answers[0].data,
            RData::A(A(Ipv4Addr::new(127, 0, 0, 2)))
        );
    }

    #[test]
    fn a_known_name_without_that_type_is_an_empty_noerror() {
        let server = DnsServer::start(table());
        for kind in [RecordType::AAAA, RecordType::MX, RecordType::SRV] {
            let response = ask(&server, "localhost.", kind);
            assert_eq!(response.metadata.response_code, ResponseCode::NoError);
            assert!(response.answers.is_empty(), "{kind}: {response:?}");
        }
    }

    #[test]
    fn an_unknown_name_is_nxdomain() {
        let server = DnsServer::start(table());
        for (name, kind) in [
            ("_xmpp-client._tcp.example.org.", RecordType::SRV),
            ("example.org", RecordType::A),
            ("localhost.localhost.", RecordType::A),
        ] {
            let response = ask(&server, name, kind);
            assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
            assert!(response.answers.is_empty());
        }
        let empty = DnsServer::start(Vec::new());
        let response = ask(&empty, "localhost.", RecordType::A);
        assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn queries_counts_answered_queries_and_not_garbage() {
        let server = DnsServer::start(table());
        assert_eq!(server.queries(), 0);
        ask(&server, "localhost.", RecordType::A);
        assert_eq!(server.queries(), 1);
        ask(&server, "nowhere.", RecordType::A);
        assert_eq!(server.queries(), 2);

        // Malformed packets, and a response, are ignored without harm.
        let socket = client();
        for garbage in [&b""[..], b"\x12", b"\x12\x34\x01\x00\x00\x01", &[0xff; 40]] {
            socket.send_to(garbage, server.address()).unwrap();
        }
        let mut stray = query(7, "localhost.", RecordType::A);
        stray.metadata.message_type = MessageType::Response;
        socket
            .send_to(&stray.to_vec().unwrap(), server.address())
            .unwrap();

        ask(&server, "_xmpp-client._tcp.localhost.", RecordType::SRV);
        assert_eq!(server.queries(), 3);
    }

    #[test]
    fn no_or_several_questions_are_formerr() {
        let server = DnsServer::start(table());
        let none = Message::new(9, MessageType::Query, OpCode::Query);
        let response = exchange(&server, &none);
        assert_eq!(response.metadata.id, 9);
        assert_eq!(response.metadata.response_code, ResponseCode::FormErr);

        let mut two = query(10, "localhost.", RecordType::A);
        two.add_query(Query::query(fqdn("xmpp.localhost"), RecordType::A));
        let response = exchange(&server, &two);
        assert_eq!(response.metadata.response_code, ResponseCode::FormErr);
        assert!(response.answers.is_empty());
    }

    #[test]
    fn tcp_answers_on_the_same_port() {
        let server = DnsServer::start(table());
        let mut stream = TcpStream::connect(server.address()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        for (id, name, kind, count) in [
            (1, "_xmpp-client._tcp.localhost.", RecordType::SRV, 2),
            (2, "xmpp.localhost.", RecordType::A, 1),
        ] {
            let bytes = query(id, name, kind).to_vec().unwrap();
            let mut framed = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
            framed.extend_from_slice(&bytes);
            stream.write_all(&framed).unwrap();
            let mut prefix = [0u8; 2];
            stream.read_exact(&mut prefix).unwrap();
            let mut packet = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
            stream.read_exact(&mut packet).unwrap();
            let response = Message::from_vec(&packet).unwrap();
            assert_eq!(response.metadata.id, id);
            assert_eq!(response.answers.len(), count);
        }
        assert_eq!(server.queries(), 2);
        drop(stream);
    }

    #[test]
    fn a_udp_answer_too_long_for_the_client_is_truncated() {
        let many = (0..40)
            .map(|i| Answer::Srv {
                name: "_xmpp-client._tcp.localhost".to_owned(),
                priority: i,
                weight: 0,
                port: 5222,
                target: format!("a-rather-long-host-name-number-{i}.localhost"),
            })
            .collect();
        let server = DnsServer::start(many);
        let question = query(3, "_xmpp-client._tcp.localhost.", RecordType::SRV);
        let response = exchange(&server, &question);
        assert!(response.metadata.truncation);
        assert!(response.answers.is_empty());
        assert_eq!(response.queries, question.queries);
    }

    #[test]
    fn dropping_it_stops_it_and_frees_the_port() {
        let server = DnsServer::start(table());
        let address = server.address();
        // A connection still open does not keep it alive.
        let _open = TcpStream::connect(address).unwrap();
        drop(server);
        UdpSocket::bind(address).unwrap();
        TcpListener::bind(address).unwrap();
    }
}
