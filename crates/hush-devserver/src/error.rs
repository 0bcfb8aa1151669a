//! What can go wrong when starting or configuring the server. Problems caused by a client never
//! surface here: they are answered on that client's stream (an error stanza or a stream error).

use thiserror::Error;

/// Errors of the server's own API.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DevServerError {
    /// The listening socket could not be opened.
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        /// The port asked for (0 = any).
        port: u16,
        /// Why not.
        source: std::io::Error,
    },
    /// The domain is not a valid XMPP domain (no `@`, no `/`, not empty).
    #[error("invalid domain `{0}`")]
    BadDomain(String),
    /// The options make no sense (a zero limit).
    #[error("invalid options: {0}")]
    BadOptions(&'static str),
    /// The user name is not a valid JID localpart.
    #[error("invalid user name `{0}`")]
    BadUser(String),
    /// A user of that name is already registered.
    #[error("the user {0} is already registered")]
    UserExists(String),
    /// The upload service's CA or certificate could not be made.
    #[error("cannot make the upload service's certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the upload service's certificate, key or protocol versions.
    #[error("cannot set up TLS for the upload service: {0}")]
    Tls(#[from] tokio_rustls::rustls::Error),
    /// The upload service's HTTPS listener could not be opened.
    #[error("cannot open the upload service's HTTPS listener on 127.0.0.1: {0}")]
    UploadBind(#[source] std::io::Error),
    /// The password's SCRAM keys could not be derived.
    #[error("cannot derive the SCRAM keys of the password: {0}")]
    Password(String),
}
