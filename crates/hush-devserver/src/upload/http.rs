//! Just enough HTTP/1.1 (RFC 9112) for the upload service, bounded everywhere: one request per
//! connection, a head of at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] fields, bodies framed by
//! `Content-Length` only (a transfer coding is answered `501`), `Expect: 100-continue`, and
//! `Connection: close` on every answer. Parsing is a pure function of the bytes, so malformed
//! input is an error value with the status to answer, never a panic.

use thiserror::Error;

/// The most bytes a request head (request line, fields, blank line) may take.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// The most header fields a request may have.
pub(crate) const MAX_HEADERS: usize = 64;

/// The methods the service knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Put,
    /// Anything else (a valid token): answered `405`.
    Other,
}

/// What the service reads of a request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) method: Method,
    /// The request target's path (origin form), without its query.
    pub(crate) path: String,
    /// `Content-Length`, when given.
    pub(crate) content_length: Option<u64>,
    /// `Authorization`, when given.
    pub(crate) authorization: Option<String>,
    /// `Expect: 100-continue`.
    pub(crate) expect_continue: bool,
    /// `Range: bytes=N-` (the form a resumed download sends): from byte N to the end. Other
    /// range forms are ignored, and the whole file is served, as RFC 9110 allows.
    pub(crate) range_from: Option<u64>,
}

/// The statuses the service answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Continue,
    Ok,
    Created,
    PartialContent,
    BadRequest,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    Conflict,
    LengthRequired,
    ContentTooLarge,
    ExpectationFailed,
    HeadTooLarge,
    NotImplemented,
    VersionNotSupported,
}

impl Status {
    pub(crate) fn code(self) -> u16 {
        match self {
            Self::Continue => 100,
            Self::Ok => 200,
            Self::Created => 201,
            Self::PartialContent => 206,
            Self::BadRequest => 400,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::RequestTimeout => 408,
            Self::Conflict => 409,
            Self::LengthRequired => 411,
            Self::ContentTooLarge => 413,
            Self::ExpectationFailed => 417,
            Self::HeadTooLarge => 431,
            Self::NotImplemented => 501,
            Self::VersionNotSupported => 505,
        }
    }

    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Continue => "Continue",
            Self::Ok => "OK",
            Self::Created => "Created",
            Self::PartialContent => "Partial Content",
            Self::BadRequest => "Bad Request",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "Not Found",
            Self::MethodNotAllowed => "Method Not Allowed",
            Self::RequestTimeout => "Request Timeout",
            Self::Conflict => "Conflict",
            Self::LengthRequired => "Length Required",
            Self::ContentTooLarge => "Content Too Large",
            Self::ExpectationFailed => "Expectation Failed",
            Self::HeadTooLarge => "Request Header Fields Too Large",
            Self::NotImplemented => "Not Implemented",
            Self::VersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// Why a request head is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub(crate) enum HeadError {
    /// Not HTTP/1.x syntax: a bad request line, field line, `Content-Length` or target.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// An HTTP version other than 1.0 and 1.1.
    #[error("HTTP version not supported")]
    Version,
    /// `Transfer-Encoding`: only `Content-Length` bodies are read.
    #[error("transfer codings are not supported")]
    TransferCoding,
    /// An `Expect` other than `100-continue`.
    #[error("unsupported expectation")]
    Expectation,
    /// Too many header fields (or too many bytes of them).
    #[error("request head too large")]
    TooLarge,
}

impl HeadError {
    /// The status that answers it.
    pub(crate) fn status(self) -> Status {
        match self {
            Self::Malformed(_) => Status::BadRequest,
            Self::Version => Status::VersionNotSupported,
            Self::TransferCoding => Status::NotImplemented,
            Self::Expectation => Status::ExpectationFailed,
            Self::TooLarge => Status::HeadTooLarge,
        }
    }
}

/// Where the head in `buf` ends (just past its blank line), once it is all there. `from` is
/// where to start looking (what was searched before, less the three bytes a terminator could
/// straddle).
pub(crate) fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.min(buf.len());
    buf.get(start..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| start + at + 4)
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|b| is_tchar(*b))
}

/// A field value's bytes: visible ASCII, space, tab, obs-text.
fn is_field_value(s: &[u8]) -> bool {
    s.iter()
        .all(|b| matches!(b, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff))
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// `1*DIGIT`, at most 19 digits (so it fits a `u64`).
fn content_length(value: &[u8]) -> Result<u64, HeadError> {
    let bad = HeadError::Malformed("Content-Length is not a number");
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(bad);
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(bad)
}

/// Reads a complete head (as [`head_end`] delimits it, blank line included).
pub(crate) fn parse_head(head: &[u8]) -> Result<Head, HeadError> {
    if !head.ends_with(b"\r\n\r\n") {
        return Err(HeadError::Malformed(
            "the head does not end with a blank line",
        ));
    }
    // Every line keeps its CR; the blank line's CR LF and the last LF go.
    let body = head.strip_suffix(b"\n\r\n").unwrap_or_default();
    let mut lines = body.split(|b| *b == b'\n').map(|line| {
        line.strip_suffix(b"\r")
            .ok_or(HeadError::Malformed("a line ends without CR LF"))
    });
    let request_line = lines
        .next()
        .ok_or(HeadError::Malformed("no request line"))??;
    let parts: Vec<&[u8]> = request_line.split(|b| *b == b' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return Err(HeadError::Malformed(
            "the request line is not METHOD TARGET VERSION",
        ));
    };
    if !is_token(method) {
        return Err(HeadError::Malformed("the method is not a token"));
    }
    match *version {
        b"HTTP/1.1" | b"HTTP/1.0" => {}
        v if v.len() == 8
            && v.starts_with(b"HTTP/")
            && v.get(5).is_some_and(u8::is_ascii_digit)
            && v.get(6) == Some(&b'.')
            && v.get(7).is_some_and(u8::is_ascii_digit) =>
        {
            return Err(HeadError::Version)
        }
        _ => return Err(HeadError::Malformed("not an HTTP version")),
    }
    if target.first() != Some(&b'/') || !target.iter().all(|b| matches!(b, 0x21..=0x7e)) {
        return Err(HeadError::Malformed("the target is not an absolute path"));
    }
    if target.contains(&b'#') {
        return Err(HeadError::Malformed("a fragment in the target"));
    }
    let path = target
        .split(|b| *b == b'?')
        .next()
        .unwrap_or(target)
        .iter()
        .map(|b| char::from(*b))
        .collect();
    let method = match *method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        b"PUT" => Method::Put,
        _ => Method::Other,
    };
    let mut head = Head {
        method,
        path,
        content_length: None,
        authorization: None,
        expect_continue: false,
        range_from: None,
    };
    let mut count = 0;
    for line in lines {
        let line = line?;
        count += 1;
        if count > MAX_HEADERS {
            return Err(HeadError::TooLarge);
        }
        if line.contains(&b'\r') {
            return Err(HeadError::Malformed("a bare CR in a field line"));
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            return Err(HeadError::Malformed("obsolete line folding"));
        }
        let colon = line
            .iter()
            .position(|b| *b == b':')
            .ok_or(HeadError::Malformed("a field line without a colon"))?;
        let (name, value) = line.split_at(colon);
        let value = trim_ows(value.get(1..).unwrap_or_default());
        if !is_token(name) {
            return Err(HeadError::Malformed("a field name is not a token"));
        }
        if !is_field_value(value) {
            return Err(HeadError::Malformed(
                "a field value holds control characters",
            ));
        }
        let name = name.to_ascii_lowercase();
        match name.as_slice() {
            b"content-length" => {
                let n = content_length(value)?;
                if head.content_length.is_some_and(|old| old != n) {
                    return Err(HeadError::Malformed("two different Content-Length fields"));
                }
                head.content_length = Some(n);
            }
            b"transfer-encoding" => return Err(HeadError::TransferCoding),
            b"authorization" => {
                if head.authorization.is_some() {
                    return Err(HeadError::Malformed("two Authorization fields"));
                }
                let text = std::str::from_utf8(value)
                    .map_err(|_| HeadError::Malformed("Authorization is not text"))?;
                head.authorization = Some(text.to_owned());
            }
            b"range" => {
                head.range_from = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.strip_prefix("bytes="))
                    .and_then(|v| v.strip_suffix('-'))
                    .and_then(|n| n.parse().ok());
            }
            b"expect" => {
                if value.eq_ignore_ascii_case(b"100-continue") {
                    head.expect_continue = true;
                } else {
                    return Err(HeadError::Expectation);
                }
            }
            _ => {}
        }
    }
    Ok(head)
}

/// A response head: status line, `Content-Length`, `Connection: close`, then `extra` fields.
pub(crate) fn response_head(
    status: Status,
    content_length: u64,
    extra: &[(&str, &str)],
) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {content_length}\r\nConnection: close\r\n",
        status.code(),
        status.reason()
    );
    for (name, value) in extra {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// An interim (1xx) response: the status line alone.
pub(crate) fn interim(status: Status) -> Vec<u8> {
    format!("HTTP/1.1 {} {}\r\n\r\n", status.code(), status.reason()).into_bytes()
}

/// A whole response without content of its own: the head and a one-line text body.
pub(crate) fn simple_response(status: Status, extra: &[(&str, &str)]) -> Vec<u8> {
    let text = format!("{} {}\n", status.code(), status.reason());
    let mut fields = vec![("Content-Type", "text/plain; charset=utf-8")];
    fields.extend_from_slice(extra);
    let mut out = response_head(status, text.len() as u64, &fields);
    out.extend_from_slice(text.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Head, HeadError> {
        parse_head(s.as_bytes())
    }

    #[test]
    fn a_put_is_read() {
        let head = parse(
            "PUT /upload/abc/f.bin?x=1 HTTP/1.1\r\nHost: localhost:1\r\n\
             content-length:  42 \r\nAuthorization: Bearer t0k\r\nExpect: 100-Continue\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            head,
            Head {
                method: Method::Put,
                path: "/upload/abc/f.bin".into(),
                content_length: Some(42),
                authorization: Some("Bearer t0k".into()),
                expect_continue: true,
                range_from: None,
            }
        );
        let ranged = parse("GET /f HTTP/1.1\r\nRange: bytes=1024-\r\n\r\n").unwrap();
        assert_eq!(ranged.range_from, Some(1024));
        let other = parse("GET /f HTTP/1.1\r\nRange: bytes=0-10\r\n\r\n").unwrap();
        assert_eq!(other.range_from, None, "only the resumption form is taken");
        let get = parse("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(get.method, Method::Get);
        assert_eq!(get.content_length, None);
        assert_eq!(
            parse("DELETE /x HTTP/1.1\r\n\r\n").unwrap().method,
            Method::Other
        );
    }

    #[test]
    fn bad_heads_get_the_right_status() {
        let status = |s: &str| parse(s).map(|_| ()).map_err(HeadError::status);
        assert_eq!(
            status("GET /x HTTP/2.0\r\n\r\n"),
            Err(Status::VersionNotSupported)
        );
        assert_eq!(status("GET /x FTP/1.1\r\n\r\n"), Err(Status::BadRequest));
        assert_eq!(status("GET  /x HTTP/1.1\r\n\r\n"), Err(Status::BadRequest));
        assert_eq!(status("GET x HTTP/1.1\r\n\r\n"), Err(Status::BadRequest));
        assert_eq!(status("GET /x#y HTTP/1.1\r\n\r\n"), Err(Status::BadRequest));
        assert_eq!(status("G(T /x HTTP/1.1\r\n\r\n"), Err(Status::BadRequest));
        assert_eq!(
            status("GET /x HTTP/1.1\nHost: a\r\n\r\n"),
            Err(Status::BadRequest)
        );
        assert_eq!(
            status("GET /x HTTP/1.1\r\nHost : a\r\n\r\n"),
            Err(Status::BadRequest)
        );
        assert_eq!(
            status("GET /x HTTP/1.1\r\nHost: a\r\n b\r\n\r\n"),
            Err(Status::BadRequest)
        );
        assert_eq!(
            status("GET /x HTTP/1.1\r\nNoColon\r\n\r\n"),
            Err(Status::BadRequest)
        );
        assert_eq!(
            status("GET /x HTTP/1.1\r\nX: a\x01b\r\n\r\n"),
            Err(Status::BadRequest)
        );
        assert_eq!(
            status("PUT /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Err(Status::BadRequest)
        );
        assert_eq!(
            status("PUT /x HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"),
            Err(Status::BadRequest)
        );
        assert_eq!(
            status("PUT /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(Status::BadRequest)
        );
        assert_eq!(
            status("PUT /x HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n"),
            Err(Status::BadRequest)
        );
        assert!(
            status("PUT /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n").is_ok()
        );
        assert_eq!(
            status("PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(Status::NotImplemented)
        );
        assert_eq!(
            status("PUT /x HTTP/1.1\r\nExpect: magic\r\n\r\n"),
            Err(Status::ExpectationFailed)
        );
        let many = format!(
            "GET /x HTTP/1.1\r\n{}\r\n",
            "A: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(status(&many), Err(Status::HeadTooLarge));
        assert_eq!(status("\r\n\r\n"), Err(Status::BadRequest));
        assert_eq!(status("GET /x HTTP/1.1"), Err(Status::BadRequest));
    }

    #[test]
    fn any_bytes_are_refused_or_read_without_panicking() {
        // A cheap exhaustive-ish sweep: every prefix and single-byte change of a valid head.
        let valid = b"PUT /upload/a/b HTTP/1.1\r\nContent-Length: 3\r\nAuthorization: x\r\n\r\n";
        for end in 0..=valid.len() {
            let _ = parse_head(&valid[..end]);
            let _ = head_end(&valid[..end], 0);
        }
        for at in 0..valid.len() {
            for b in [0u8, b'\r', b'\n', b' ', b':', 0x80, 0xff] {
                let mut v = valid.to_vec();
                v[at] = b;
                let _ = parse_head(&v);
            }
        }
    }

    #[test]
    fn the_end_of_a_head_is_found_across_reads() {
        let buf = b"GET / HTTP/1.1\r\n\r\nbody";
        assert_eq!(head_end(buf, 0), Some(18));
        assert_eq!(head_end(buf, 14), Some(18));
        assert_eq!(head_end(buf, 15), None);
        assert_eq!(head_end(buf, 100), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r", 0), None);
    }

    #[test]
    fn responses_close_the_connection() {
        let r = simple_response(Status::MethodNotAllowed, &[("Allow", "GET, HEAD, PUT")]);
        let text = String::from_utf8(r).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
        assert!(text.contains("\r\nAllow: GET, HEAD, PUT\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n405 Method Not Allowed\n"), "{text}");
        assert!(text.contains("Content-Length: 23\r\n"), "{text}");
    }
}
