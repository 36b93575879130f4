//! The WebSocket opening handshake (RFC 6455 §4.2): parse the client's HTTP/1.1 upgrade request,
//! validate it, and write the `101 Switching Protocols` answer or an HTTP error.
//!
//! Like pinus's `ws.Server` (spec §5.7), any path is accepted and no subprotocol or extension is
//! negotiated (`Sec-WebSocket-Protocol`/`-Extensions` are ignored, so the answer names none and
//! frames carry no compression). The request is parsed by `httparse`; the accept key is SHA-1 +
//! base64 (`sha1`, `base64`). Nothing here allocates: the answer is appended to the caller's
//! buffer.

use base64::Engine as _;
use sha1::{Digest as _, Sha1};
use std::fmt;

/// The longest upgrade request accepted, in bytes, request line and headers included. A client
/// that sends more without finishing its headers is refused with 431.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// The most header lines accepted in an upgrade request (browsers send 10–20).
pub const MAX_HEADERS: usize = 64;

/// RFC 6455 §1.3: the GUID appended to the client's key before hashing.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A valid upgrade request, borrowed from the connection's input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upgrade<'b> {
    /// Bytes of the request, its final blank line included. Anything after them is already
    /// WebSocket frames (a client may pipeline its first frame): decode from there.
    pub consumed: usize,
    /// The `Sec-WebSocket-Key` value (24 base64 characters); pass it to [`encode_accept`].
    pub key: &'b [u8],
    /// The request target, as sent (any path is accepted).
    pub path: &'b str,
    /// The value of the configured real-IP header (pinus `realIPKey`, such as
    /// `x-forwarded-for`), surrounding whitespace trimmed; `None` if not configured or absent.
    pub real_ip: Option<&'b [u8]>,
}

/// Why an upgrade request was refused. Answer it with [`HandshakeError::encode_response`],
/// then close the connection once the answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Not parseable as an HTTP/1.x request (`400`).
    Malformed,
    /// HTTP/1.0: the upgrade mechanism needs HTTP/1.1 (`400`).
    Http10,
    /// Headers longer than [`MAX_REQUEST_BYTES`] or more than [`MAX_HEADERS`] lines (`431`).
    TooLarge,
    /// A method other than `GET` (`405`, with `Allow: GET`). The sniffer sends `POST`, `PUT`,
    /// `DELETE` and `HEAD` here too, as pinus does.
    Method,
    /// No `Upgrade: websocket` or no `upgrade` token in `Connection` (`400`).
    NotUpgrade,
    /// `Sec-WebSocket-Version` absent or not `13` (`426`, with `Sec-WebSocket-Version: 13`, as
    /// RFC 6455 §4.4 asks).
    Version,
    /// `Sec-WebSocket-Key` absent or not the base64 form of 16 bytes (`400`).
    Key,
}

impl HandshakeError {
    /// The HTTP status code of the answer.
    #[cfg(feature = "internals")] // only the fuzz harnesses and tests use it
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::Malformed
            | HandshakeError::Http10
            | HandshakeError::NotUpgrade
            | HandshakeError::Key => 400,
            HandshakeError::Method => 405,
            HandshakeError::Version => 426,
            HandshakeError::TooLarge => 431,
        }
    }

    /// Appends the HTTP error answer (status line, `Connection: close`, no body) to `out`.
    ///
    /// Allocates only if `out` must grow.
    pub fn encode_response(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(match self {
            HandshakeError::Method => b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n",
            HandshakeError::Version => {
                b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n"
            }
            HandshakeError::TooLarge => b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
            _ => b"HTTP/1.1 400 Bad Request\r\n",
        });
        out.extend_from_slice(b"Connection: close\r\nContent-Length: 0\r\n\r\n");
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeError::Malformed => "malformed http request",
            HandshakeError::Http10 => "websocket upgrade needs http/1.1",
            HandshakeError::TooLarge => "upgrade request headers too large",
            HandshakeError::Method => "websocket upgrade must be a GET",
            HandshakeError::NotUpgrade => "not a websocket upgrade request",
            HandshakeError::Version => "unsupported Sec-WebSocket-Version (13 expected)",
            HandshakeError::Key => "missing or invalid Sec-WebSocket-Key",
        })
    }
}

impl std::error::Error for HandshakeError {}

/// Incremental parser of one connection's upgrade request.
///
/// Call [`parse`](Self::parse) with the whole input received so far each time more arrives.
/// The parser remembers how far it searched for the blank line that ends the headers, so a
/// request trickled in byte by byte costs O(its length) in total, not O(length²); the request
/// itself is parsed once, when complete. Holds one `usize`; allocates nothing.
#[derive(Debug, Clone, Default)]
pub struct UpgradeParser {
    /// Bytes of the input already searched for the end of the headers.
    scanned: usize,
}

impl UpgradeParser {
    /// A parser for a new connection.
    pub const fn new() -> UpgradeParser {
        UpgradeParser { scanned: 0 }
    }

    /// Parses the upgrade request at the start of `buf` (everything the connection has sent,
    /// from its first byte; pass a longer `buf` on each call).
    ///
    /// `real_ip_header` names a header (case-insensitive) whose value is returned in
    /// [`Upgrade::real_ip`], for servers behind a proxy.
    ///
    /// Returns `Ok(None)` while the headers are incomplete, `Ok(Some(upgrade))` for a valid
    /// request (answer it with [`encode_accept`]), and an error for an invalid one.
    ///
    /// # Errors
    ///
    /// A [`HandshakeError`] for a request that is malformed, too large, not a `GET`, not a
    /// WebSocket upgrade, or has a bad version or key. Answer with
    /// [`HandshakeError::encode_response`] and close.
    ///
    /// # Examples
    ///
    /// ```
    /// # use gatehouse::__private::ws::{encode_accept, UpgradeParser};
    /// let request = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
    ///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    ///     Sec-WebSocket-Version: 13\r\n\r\n\x82\x80";
    /// let mut parser = UpgradeParser::new();
    /// assert_eq!(parser.parse(&request[..40], None), Ok(None)); // headers incomplete
    /// let upgrade = parser.parse(request, None).unwrap().unwrap();
    /// assert_eq!(upgrade.path, "/chat");
    /// assert_eq!(&request[upgrade.consumed..], b"\x82\x80"); // a pipelined frame
    ///
    /// let mut out = Vec::new();
    /// encode_accept(upgrade.key, &mut out);
    /// assert!(out.ends_with(b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"));
    /// ```
    pub fn parse<'b>(
        &mut self,
        buf: &'b [u8],
        real_ip_header: Option<&str>,
    ) -> Result<Option<Upgrade<'b>>, HandshakeError> {
        let window = &buf[..buf.len().min(MAX_REQUEST_BYTES)];
        // Resume two bytes back: the blank line may straddle the previous end of input.
        let from = self.scanned.saturating_sub(2).min(window.len());
        let Some(end) = headers_end(window, from) else {
            self.scanned = window.len();
            return if buf.len() >= MAX_REQUEST_BYTES {
                Err(HandshakeError::TooLarge)
            } else {
                Ok(None)
            };
        };
        self.scanned = end;
        parse_request(&buf[..end], real_ip_header).map(Some)
    }
}

/// The index just past the first empty line (`\n\r\n` or `\n\n`) that starts at or after
/// `from`, if any.
fn headers_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(off) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let nl = i + off;
        match buf.get(nl + 1..) {
            Some([b'\n', ..]) => return Some(nl + 2),
            Some([b'\r', b'\n', ..]) => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    None
}

/// Parses and validates one complete request head (`head` ends with its blank line).
fn parse_request<'b>(
    head: &'b [u8],
    real_ip_header: Option<&str>,
) -> Result<Upgrade<'b>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let consumed = match req.parse(head) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(HandshakeError::Malformed),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooLarge),
        Err(_) => return Err(HandshakeError::Malformed),
    };
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HandshakeError::Malformed);
    };
    if method != "GET" {
        return Err(HandshakeError::Method);
    }
    if version < 1 {
        return Err(HandshakeError::Http10);
    }

    let mut upgrade = false;
    let mut connection = false;
    let mut version_13 = false;
    let mut key = None;
    let mut real_ip = None;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade |= has_token(h.value, b"websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection |= has_token(h.value, b"upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            version_13 = trim(h.value) == b"13";
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            key = key.or(Some(trim(h.value)));
        }
        if real_ip.is_none() && real_ip_header.is_some_and(|r| name.eq_ignore_ascii_case(r)) {
            real_ip = Some(trim(h.value));
        }
    }
    if !(upgrade && connection) {
        return Err(HandshakeError::NotUpgrade);
    }
    if !version_13 {
        return Err(HandshakeError::Version);
    }
    let key = key.filter(|k| valid_key(k)).ok_or(HandshakeError::Key)?;
    Ok(Upgrade {
        consumed,
        key,
        path,
        real_ip,
    })
}

/// True if the comma-separated header value holds `token` (ASCII case-insensitive).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token))
}

fn trim(value: &[u8]) -> &[u8] {
    value.trim_ascii()
}

/// RFC 6455 §4.2.1: the key is the base64 encoding of 16 bytes: 22 base64 digits, then `==`.
fn valid_key(key: &[u8]) -> bool {
    let is_digit = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    key.len() == 24 && key[..22].iter().all(is_digit) && &key[22..] == b"=="
}

/// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`: base64(SHA-1(key +
/// GUID)), RFC 6455 §4.2.2. Allocation-free.
///
/// # Examples
///
/// ```
/// # use gatehouse::__private::ws::accept_key;
/// assert_eq!(&accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    let digest = sha.finalize();
    let mut out = [0u8; 28];
    // 20 bytes always encode to exactly 28, so this cannot fail.
    let written = base64::engine::general_purpose::STANDARD.encode_slice(digest, &mut out);
    debug_assert_eq!(written, Ok(28));
    out
}

/// Appends the `101 Switching Protocols` answer for a request whose key is `key` to `out`.
/// No subprotocol, no extension. Allocates only if `out` must grow.
pub fn encode_accept(key: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    out.extend_from_slice(&accept_key(key));
    out.extend_from_slice(b"\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
        Host: server.example.com\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    fn parse(buf: &[u8]) -> Result<Option<Upgrade<'_>>, HandshakeError> {
        UpgradeParser::new().parse(buf, None)
    }

    #[test]
    fn rfc_6455_example() {
        let up = parse(RFC_REQUEST).unwrap().unwrap();
        assert_eq!(up.consumed, RFC_REQUEST.len());
        assert_eq!(up.key, b"dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(up.path, "/chat");
        assert_eq!(&accept_key(up.key), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let mut out = Vec::new();
        encode_accept(up.key, &mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }

    #[test]
    fn byte_by_byte_then_pipelined_frame() {
        let mut input = RFC_REQUEST.to_vec();
        input.extend_from_slice(b"\x82\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58");
        let mut p = UpgradeParser::new();
        for n in 0..RFC_REQUEST.len() {
            assert_eq!(p.parse(&input[..n], None), Ok(None), "{n}");
        }
        let up = p.parse(&input, None).unwrap().unwrap();
        assert_eq!(up.consumed, RFC_REQUEST.len());
    }

    #[test]
    fn any_path_case_and_token_lists() {
        let req = b"GET /any/path?x=1 HTTP/1.1\r\nupgrade: WebSocket\r\n\
            connection: keep-alive, Upgrade\r\nsec-websocket-key:  AQIDBAUGBwgJCgsMDQ4PEA== \r\n\
            SEC-WEBSOCKET-VERSION: 13\r\nX-Real-IP: 10.1.2.3 \r\n\r\n";
        let up = UpgradeParser::new()
            .parse(req, Some("x-real-ip"))
            .unwrap()
            .unwrap();
        assert_eq!(up.path, "/any/path?x=1");
        assert_eq!(up.key, b"AQIDBAUGBwgJCgsMDQ4PEA==");
        assert_eq!(up.real_ip, Some(&b"10.1.2.3"[..]));
        assert_eq!(parse(req).unwrap().unwrap().real_ip, None);
    }

    #[test]
    fn bare_newlines_are_accepted() {
        let req = b"GET / HTTP/1.1\nUpgrade: websocket\nConnection: upgrade\n\
            Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\nSec-WebSocket-Version: 13\n\n";
        assert_eq!(parse(req).unwrap().unwrap().consumed, req.len());
    }

    fn refused(req: &[u8]) -> HandshakeError {
        parse(req).expect_err("refused")
    }

    #[test]
    fn invalid_requests_are_refused_with_their_status() {
        let good = std::str::from_utf8(RFC_REQUEST).unwrap();
        let cases = [
            (good.replace("GET", "POST"), 405),
            (good.replace("HTTP/1.1", "HTTP/1.0"), 400),
            (good.replace("Upgrade: websocket\r\n", ""), 400),
            (good.replace("Upgrade: websocket", "Upgrade: h2c"), 400),
            (
                good.replace("Connection: Upgrade", "Connection: keep-alive"),
                400,
            ),
            (good.replace("Version: 13", "Version: 8"), 426),
            (good.replace("Sec-WebSocket-Version: 13\r\n", ""), 426),
            (
                good.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
                400,
            ),
            (good.replace("dGhlIHNhbXBsZSBub25jZQ==", "short=="), 400),
            (
                good.replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ=x"),
                400,
            ),
            (good.replace("GET /chat", "GET\0/chat"), 400),
        ];
        for (req, status) in cases {
            let err = refused(req.as_bytes());
            assert_eq!(err.status(), status, "{req:?}: {err}");
            let mut out = Vec::new();
            err.encode_response(&mut out);
            assert!(out.starts_with(format!("HTTP/1.1 {status} ").as_bytes()));
            assert!(out.ends_with(b"\r\n\r\n"));
        }
    }

    #[test]
    fn size_and_header_count_are_bounded() {
        // Never-ending headers: refused once the limit is reached, never buffered beyond it.
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        let mut p = UpgradeParser::new();
        while req.len() < MAX_REQUEST_BYTES {
            assert_eq!(p.parse(&req, None), Ok(None));
            req.extend_from_slice(
                b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            );
        }
        assert_eq!(p.parse(&req, None), Err(HandshakeError::TooLarge));

        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for _ in 0..=MAX_HEADERS {
            many.extend_from_slice(b"A: b\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(refused(&many), HandshakeError::TooLarge);
        assert_eq!(HandshakeError::TooLarge.status(), 431);
    }
}
