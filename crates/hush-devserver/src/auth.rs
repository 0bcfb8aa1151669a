//! Accounts' credentials and the SASL exchange (RFC 6120 §6): SCRAM-SHA-256, SCRAM-SHA-1 and
//! PLAIN from the `sasl` crate's server side, checked against the registered users.
//!
//! One adaptation: `sasl` 0.5's SCRAM server, given `ChannelBinding::None`, insists on the
//! GS2 flag `y` ("client supports channel binding, server did not offer it") and refuses the
//! far more common `n` ("client does not support it") that tokio-xmpp and most clients send
//! over plain TCP. RFC 5802 §6 allows both here (the server offers no `-PLUS` mechanism). So
//! the channel-binding value handed to the mechanism is chosen per attempt from the flag the
//! client sent: `y` → `None`, whose check then passes; `n` → `TlsUnique` with *empty* data,
//! which passes the crate's check and makes its channel-binding input exactly the GS2 header,
//! as RFC 5802 specifies for `n`. The client's proof covers that input, so nothing is
//! weakened. A `p=…` flag (channel binding requested) is refused: there is no TLS to bind to.

use std::sync::Arc;

use base64::Engine;
use sasl::common::scram::{Sha1, Sha256};
use sasl::common::{ChannelBinding, Identity};
use sasl::secret::{Pbkdf2Sha1, Pbkdf2Sha256, Plain as PlainSecret};
use sasl::server::mechanisms::{Plain, Scram};
use sasl::server::{
    Mechanism, MechanismError, Provider, ProviderError, Response, Validator, ValidatorError,
};

use crate::error::DevServerError;
use crate::state::{lock, Shared};

/// PBKDF2 rounds for the stored SCRAM keys (RFC 7677's minimum).
const ITERATIONS: u32 = 4096;

/// The mechanisms offered, strongest first.
pub(crate) const MECHANISMS: [&str; 3] = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"];

/// What the server keeps of a password.
#[derive(Clone)]
pub(crate) struct Secrets {
    plain: String,
    sha1: Pbkdf2Sha1,
    sha256: Pbkdf2Sha256,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

impl Secrets {
    /// Derives the SCRAM keys of `password` with a fresh salt.
    pub(crate) fn new(password: &str) -> Result<Self, DevServerError> {
        let salt: [u8; 16] = rand::random();
        let sha1 = Pbkdf2Sha1::derive(password, &salt, ITERATIONS)
            .map_err(|e| DevServerError::Password(e.to_string()))?;
        let sha256 = Pbkdf2Sha256::derive(password, &salt, ITERATIONS)
            .map_err(|e| DevServerError::Password(e.to_string()))?;
        Ok(Self {
            plain: password.to_owned(),
            sha1,
            sha256,
        })
    }
}

/// The normalized localpart of a user name as a client sends it, if it is one.
pub(crate) fn localpart(name: &str) -> Option<String> {
    tokio_xmpp::jid::NodePart::new(name)
        .ok()
        .map(|n| n.as_str().to_owned())
}

/// Looks users up for the mechanisms.
#[derive(Clone)]
struct Users(Arc<Shared>);

impl Users {
    fn secrets(&self, identity: &Identity) -> Option<Secrets> {
        let Identity::Username(name) = identity else {
            return None;
        };
        let user = localpart(name)?;
        lock(&self.0.state)
            .users
            .get(&user)
            .map(|u| u.secrets.clone())
    }
}

impl Validator<Pbkdf2Sha1> for Users {
    fn validate(&self, identity: &Identity, value: &Pbkdf2Sha1) -> Result<(), ValidatorError> {
        match self.secrets(identity) {
            Some(s) if s.sha1 == *value => Ok(()),
            _ => Err(ValidatorError::AuthenticationFailed),
        }
    }
}

impl Provider<Pbkdf2Sha1> for Users {
    fn provide(&self, identity: &Identity) -> Result<Pbkdf2Sha1, ProviderError> {
        self.secrets(identity)
            .map(|s| s.sha1)
            .ok_or(ProviderError::AuthenticationFailed)
    }
}

impl Validator<Pbkdf2Sha256> for Users {
    fn validate(&self, identity: &Identity, value: &Pbkdf2Sha256) -> Result<(), ValidatorError> {
        match self.secrets(identity) {
            Some(s) if s.sha256 == *value => Ok(()),
            _ => Err(ValidatorError::AuthenticationFailed),
        }
    }
}

impl Provider<Pbkdf2Sha256> for Users {
    fn provide(&self, identity: &Identity) -> Result<Pbkdf2Sha256, ProviderError> {
        self.secrets(identity)
            .map(|s| s.sha256)
            .ok_or(ProviderError::AuthenticationFailed)
    }
}

impl Validator<PlainSecret> for Users {
    fn validate(&self, identity: &Identity, value: &PlainSecret) -> Result<(), ValidatorError> {
        match self.secrets(identity) {
            Some(s) if s.plain == value.0 => Ok(()),
            _ => Err(ValidatorError::AuthenticationFailed),
        }
    }
}

/// What to answer the client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// `<challenge/>` with this data.
    Challenge(Vec<u8>),
    /// `<success/>` with this data; the client is this user (localpart).
    Success(String, Vec<u8>),
    /// `<failure/>` with this condition.
    Failure(&'static str),
}

/// One SASL exchange on a connection.
pub(crate) struct Exchange {
    shared: Arc<Shared>,
    name: &'static str,
    mechanism: Option<Box<dyn Mechanism + Send>>,
}

impl Exchange {
    /// Starts `mechanism`; `None` if it is not offered.
    pub(crate) fn start(shared: Arc<Shared>, mechanism: &str) -> Option<Self> {
        let name = MECHANISMS.iter().find(|m| **m == mechanism)?;
        Some(Self {
            shared,
            name,
            mechanism: None,
        })
    }

    /// The first message: picks the channel-binding value from the GS2 flag (module docs).
    fn begin(&self, first: &[u8]) -> Result<Box<dyn Mechanism + Send>, &'static str> {
        let users = Users(self.shared.clone());
        let binding = || match first.first() {
            Some(b'y') => Ok(ChannelBinding::None),
            Some(b'n') => Ok(ChannelBinding::TlsUnique(Vec::new())),
            _ => Err("malformed-request"),
        };
        Ok(match self.name {
            "SCRAM-SHA-256" => Box::new(Scram::<Sha256, Users>::new(users, binding()?)),
            "SCRAM-SHA-1" => Box::new(Scram::<Sha1, Users>::new(users, binding()?)),
            _ => Box::new(Plain::new(users)),
        })
    }

    /// Feeds one client message (`<auth/>` data or a `<response/>`).
    pub(crate) fn step(&mut self, data: &[u8]) -> Step {
        if self.mechanism.is_none() {
            match self.begin(data) {
                Ok(m) => self.mechanism = Some(m),
                Err(condition) => return Step::Failure(condition),
            }
        }
        let Some(mechanism) = self.mechanism.as_mut() else {
            return Step::Failure("temporary-auth-failure");
        };
        match mechanism.respond(data) {
            Ok(Response::Proceed(challenge)) => Step::Challenge(challenge),
            Ok(Response::Success(Identity::Username(name), extra)) => match localpart(&name) {
                Some(user) if lock(&self.shared.state).users.contains_key(&user) => {
                    Step::Success(user, extra)
                }
                _ => Step::Failure("not-authorized"),
            },
            Ok(Response::Success(Identity::None, _)) => Step::Failure("not-authorized"),
            Err(e) => Step::Failure(match e {
                MechanismError::ValidatorError(_)
                | MechanismError::ProviderError(_)
                | MechanismError::AuthenticationFailed
                | MechanismError::NoProof
                | MechanismError::CannotDecodeProof => "not-authorized",
                _ => "malformed-request",
            }),
        }
    }
}

/// Decodes the text of `<auth/>` or `<response/>`: base64, with `=` for empty data.
pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text == "=" {
        return Some(Vec::new());
    }
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// Encodes challenge or success data (empty data is sent as an empty element).
pub(crate) fn encode(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::Limits;
    use crate::state::User;
    use sasl::client::mechanisms::Scram as ClientScram;
    use sasl::client::Mechanism as _;
    use sasl::common::Credentials;

    fn shared() -> Arc<Shared> {
        let shared = Arc::new(Shared::new(
            "localhost".into(),
            Limits {
                max_bytes: 1 << 16,
                max_depth: 16,
            },
            "127.0.0.1:1".parse().unwrap(),
            crate::upload::Service::new(
                crate::upload::Limits {
                    max_file: 1,
                    max_total: 1,
                },
                "127.0.0.1:2".parse().unwrap(),
            )
            .unwrap(),
        ));
        lock(&shared.state).users.insert(
            "alice".into(),
            User {
                secrets: Secrets::new("pw").unwrap(),
                archive: Default::default(),
                offline: Default::default(),
                pep: Default::default(),
            },
        );
        shared
    }

    fn scram_login(password: &str, binding: ChannelBinding) -> Step {
        let creds = Credentials::default()
            .with_username("alice")
            .with_password(password)
            .with_channel_binding(binding);
        let mut client = ClientScram::<Sha256>::from_credentials(creds).unwrap();
        let mut server = Exchange::start(shared(), "SCRAM-SHA-256").unwrap();
        let challenge = match server.step(&client.initial()) {
            Step::Challenge(c) => c,
            other => return other,
        };
        let response = client.response(&challenge).unwrap();
        server.step(&response)
    }

    #[test]
    fn scram_accepts_n_and_y_clients_and_checks_the_password() {
        assert!(matches!(
            scram_login("pw", ChannelBinding::None),
            Step::Success(ref u, _) if u == "alice"
        ));
        assert!(matches!(
            scram_login("pw", ChannelBinding::Unsupported),
            Step::Success(..)
        ));
        assert_eq!(
            scram_login("wrong", ChannelBinding::None),
            Step::Failure("not-authorized")
        );
        assert_eq!(
            scram_login("pw", ChannelBinding::TlsExporter(vec![1, 2, 3])),
            Step::Failure("malformed-request")
        );
    }

    #[test]
    fn plain_checks_the_password_and_garbage_fails_cleanly() {
        let mut ok = Exchange::start(shared(), "PLAIN").unwrap();
        assert!(matches!(ok.step(b"\0alice\0pw"), Step::Success(..)));
        let mut bad = Exchange::start(shared(), "PLAIN").unwrap();
        assert_eq!(bad.step(b"\0alice\0nope"), Step::Failure("not-authorized"));
        let mut nobody = Exchange::start(shared(), "PLAIN").unwrap();
        assert_eq!(nobody.step(b"\0bob\0pw"), Step::Failure("not-authorized"));
        for garbage in [&b""[..], b"\0", b"n", b"n,,", b"y,,n=alice", b"\xff\xfe,,,"] {
            let mut scram = Exchange::start(shared(), "SCRAM-SHA-1").unwrap();
            assert!(
                matches!(scram.step(garbage), Step::Failure(_)),
                "{garbage:?}"
            );
        }
        assert!(Exchange::start(shared(), "DIGEST-MD5").is_none());
    }
}
