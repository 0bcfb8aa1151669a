//! JSON-RPC 2.0 on the agent's socket: one JSON object per line, both ways (the framing
//! signal-cli's daemon mode uses). A client sends requests; the agent answers each with a
//! response carrying the same `id`, and sends notifications (no `id`) to clients that
//! subscribed. Batches are not supported.

use serde_json::{json, Map, Value};
use thiserror::Error;

/// The longest request the agent accepts, in bytes.
pub(crate) const MAX_LINE: usize = 1 << 20;
/// The longest line a client accepts from the agent (which it trusts: the same user), in
/// bytes. A message may hold up to 256 KiB of text, and its escaped JSON and text lines take
/// several times that; `history` sends up to its limit of them in one line.
pub(crate) const MAX_ANSWER: usize = 1 << 30;

/// A request read from a client. Its `Debug` leaves the parameters out: `unlock` carries the
/// store passphrase.
pub(crate) struct Request {
    /// The id to answer with; `None` for a notification from the client (not answered).
    pub(crate) id: Option<Value>,
    /// The method.
    pub(crate) method: String,
    /// The named parameters (positional ones are refused).
    pub(crate) params: Map<String, Value>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// Why a line is not a request we can serve: each is answered with its JSON-RPC code.
#[derive(Debug, Error, PartialEq)]
pub(crate) enum Fault {
    /// Not JSON.
    #[error("not JSON: {0}")]
    Parse(String),
    /// JSON, but not a JSON-RPC 2.0 request.
    #[error("not a JSON-RPC 2.0 request: {0}")]
    Invalid(&'static str),
    /// No such method.
    #[error("no method `{0}`")]
    NoMethod(String),
    /// A parameter missing or of the wrong kind.
    #[error("{0}")]
    Params(String),
    /// The method ran and failed: the message is the error `hush` would print, the kind its
    /// name for scripts (`"kind"` in the error's `data`: usage, authentication, network,
    /// refused, partial, failed).
    #[error("{message}")]
    Failed {
        /// The error, in words.
        message: String,
        /// Its kind.
        kind: &'static str,
    },
}

impl Fault {
    /// The error code (JSON-RPC 2.0 §5.1; -32000 for a command that failed).
    pub(crate) fn code(&self) -> i64 {
        match self {
            Fault::Parse(_) => -32700,
            Fault::Invalid(_) => -32600,
            Fault::NoMethod(_) => -32601,
            Fault::Params(_) => -32602,
            Fault::Failed { .. } => -32000,
        }
    }
}

/// Reads one line as a request. On a fault, also gives the id to answer with: null when none
/// could be read (JSON-RPC 2.0 §5), `None` for a notification, which is never answered.
pub(crate) fn parse(line: &str) -> Result<Request, (Fault, Option<Value>)> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| (Fault::Parse(e.to_string()), Some(Value::Null)))?;
    let Value::Object(mut object) = value else {
        return Err((Fault::Invalid("not an object"), Some(Value::Null)));
    };
    let id = object.remove("id");
    if !matches!(
        id,
        None | Some(Value::Null | Value::String(_) | Value::Number(_))
    ) {
        // An id that cannot be one is answered with null (JSON-RPC 2.0 §5).
        return Err((
            Fault::Invalid("`id` must be a string or a number"),
            Some(Value::Null),
        ));
    }
    let answer_to = id.clone();
    let fault = |f| (f, answer_to.clone());
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(fault(Fault::Invalid("`jsonrpc` must be \"2.0\"")));
    }
    let Some(Value::String(method)) = object.remove("method") else {
        return Err(fault(Fault::Invalid("`method` must be a string")));
    };
    let params = match object.remove("params") {
        None => Map::new(),
        Some(Value::Object(params)) => params,
        Some(_) => {
            return Err(fault(Fault::Params(
                "`params` must be an object (named parameters)".into(),
            )))
        }
    };
    Ok(Request { id, method, params })
}

/// A successful response.
pub(crate) fn response(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// An error response.
pub(crate) fn error(id: Value, fault: &Fault) -> Value {
    let mut error = json!({"code": fault.code(), "message": fault.to_string()});
    if let Fault::Failed { kind, .. } = fault {
        error["data"] = json!({"kind": kind});
    }
    json!({"jsonrpc": "2.0", "id": id, "error": error})
}

/// A notification from the agent.
pub(crate) fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// A request from a client (the `hush` commands use ids counting from 1).
pub(crate) fn request(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// Named parameters, read with errors that say which one is wrong.
pub(crate) struct Params<'a>(pub(crate) &'a Map<String, Value>);

impl Params<'_> {
    /// A required string.
    pub(crate) fn string(&self, name: &str) -> Result<&str, Fault> {
        self.0
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| Fault::Params(format!("`{name}` (a string) is required")))
    }

    /// An optional boolean, false when absent.
    pub(crate) fn flag(&self, name: &str) -> Result<bool, Fault> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(Fault::Params(format!("`{name}` must be true or false"))),
        }
    }

    /// An optional count.
    pub(crate) fn count(&self, name: &str) -> Result<Option<usize>, Fault> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| Fault::Params(format!("`{name}` must be a count"))),
        }
    }

    /// An optional device id (0 to 2³¹−1, as XEP-0384 allows).
    pub(crate) fn device_id(&self, name: &str) -> Result<Option<u32>, Fault> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => device(v).map(Some).ok_or_else(|| not_device(name)),
        }
    }

    /// A required, non-empty list of device ids.
    pub(crate) fn device_ids(&self, name: &str) -> Result<Vec<u32>, Fault> {
        let ids = self
            .0
            .get(name)
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| Fault::Params(format!("`{name}` (a list of device ids) is required")))?;
        ids.iter()
            .map(|v| device(v).ok_or_else(|| not_device(name)))
            .collect()
    }
}

fn device(v: &Value) -> Option<u32> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n < 1 << 31)
}

fn not_device(name: &str) -> Fault {
    Fault::Params(format!("`{name}` must hold device ids (0 to 2147483647)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_and_faults_keep_the_id() {
        let r = parse(r#"{"jsonrpc":"2.0","id":7,"method":"send","params":{"to":"a@b"}}"#).unwrap();
        assert_eq!(r.id, Some(json!(7)));
        assert_eq!(r.method, "send");
        assert_eq!(Params(&r.params).string("to"), Ok("a@b"));
        assert!(Params(&r.params).string("text").is_err());
        assert_eq!(Params(&r.params).flag("plaintext"), Ok(false));

        let r = parse(r#"{"jsonrpc":"2.0","id":8,"method":"x","params":{"d":5,"big":2147483648,"ids":[1,2],"none":[],"bad":[1,"2"]}}"#).unwrap();
        let p = Params(&r.params);
        assert_eq!(p.device_id("d"), Ok(Some(5)));
        assert_eq!(p.device_id("absent"), Ok(None));
        assert!(p.device_id("big").is_err());
        assert_eq!(p.device_ids("ids"), Ok(vec![1, 2]));
        assert!(p.device_ids("none").is_err());
        assert!(p.device_ids("bad").is_err());
        assert!(p.device_ids("absent").is_err());

        let cases = [
            ("nonsense", -32700, Some(Value::Null)),
            ("[1,2]", -32600, Some(Value::Null)),
            (r#"{"id":1,"method":"x"}"#, -32600, Some(json!(1))),
            (
                r#"{"jsonrpc":"2.0","id":{},"method":"x"}"#,
                -32600,
                Some(Value::Null),
            ),
            (
                r#"{"jsonrpc":"2.0","id":"a","method":3}"#,
                -32600,
                Some(json!("a")),
            ),
            (
                r#"{"jsonrpc":"2.0","id":2,"method":"x","params":[1]}"#,
                -32602,
                Some(json!(2)),
            ),
            // A notification is never answered, even when it is wrong.
            (
                r#"{"jsonrpc":"2.0","method":"x","params":[1]}"#,
                -32602,
                None,
            ),
        ];
        for (line, code, id) in cases {
            let (fault, answer_to) = parse(line).unwrap_err();
            assert_eq!(fault.code(), code, "{line}");
            assert_eq!(answer_to, id, "{line}");
            let e = error(answer_to.unwrap_or_default(), &fault);
            assert_eq!(e["error"]["code"], code);
        }
        // A request without an id is a notification: read, not answered.
        let n = parse(r#"{"jsonrpc":"2.0","method":"ping"}"#).unwrap();
        assert_eq!(n.id, None);
    }
}
