//! The message layer: the body of a DATA package (spec §5.2).
//!
//! ```text
//! flag:1 | [id: LEB128, 1..=5 bytes] | [route]                          | body (the rest)
//!          (request, response)         (request, notify, push)
//! flag bits: bit0 = route compressed, bits1-3 = message type, bit4 = gzip, bits5-7 = 0
//! route:     uncompressed: length:1 + UTF-8 bytes (0..=255)   compressed: code:2 (big-endian)
//! ```

use super::package::{header, PackageType, HEADER_LEN, MAX_BODY_LEN};
use std::fmt;

const FLAG_ROUTE_CODE: u8 = 0x01;
const FLAG_GZIP: u8 = 0x10;
const FLAG_RESERVED: u8 = 0xe0;

/// Longest uncompressed route: its length must fit in one byte.
pub const MAX_ROUTE_LEN: usize = 255;

/// Longest message id encoding: 5 LEB128 bytes carry 35 bits, enough for any `u32`.
pub const MAX_ID_LEN: usize = 5;

/// The message type, bits 1–3 of the flag byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// Client → server, expects a [`Response`](Self::Response) with the same id. Has an id and
    /// a route.
    Request = 0,
    /// Client → server, no response. Has a route, no id.
    Notify = 1,
    /// Server → client answer to a request. Has an id, **no route** (the client remembers which
    /// route it asked).
    Response = 2,
    /// Server → client message on a route. Has a route, no id.
    Push = 3,
}

impl MessageType {
    /// The type for a 3-bit type field, or `None` for 4..=7.
    pub const fn from_u8(bits: u8) -> Option<MessageType> {
        Some(match bits {
            0 => MessageType::Request,
            1 => MessageType::Notify,
            2 => MessageType::Response,
            3 => MessageType::Push,
            _ => return None,
        })
    }

    /// The 3-bit type field.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// True for the types that carry an id: request and response.
    pub const fn has_id(self) -> bool {
        matches!(self, MessageType::Request | MessageType::Response)
    }

    /// True for the types that carry a route: request, notify and push.
    pub const fn has_route(self) -> bool {
        !matches!(self, MessageType::Response)
    }

    fn name(self) -> &'static str {
        match self {
            MessageType::Request => "request",
            MessageType::Notify => "notify",
            MessageType::Response => "response",
            MessageType::Push => "push",
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The route of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route<'a> {
    /// No route: the only form for a [`MessageType::Response`], never valid for the others.
    None,
    /// An uncompressed route such as `connector.entryHandler.entry`: at most
    /// [`MAX_ROUTE_LEN`] bytes of UTF-8, possibly empty.
    Name(&'a str),
    /// A route compressed through the [`Dictionary`](super::Dictionary). Dictionary codes
    /// start at 1; the wire allows 0..=65535 and the dictionary resolves 0 to nothing.
    Code(u16),
}

impl<'a> From<&'a str> for Route<'a> {
    fn from(name: &'a str) -> Route<'a> {
        Route::Name(name)
    }
}

impl From<u16> for Route<'_> {
    fn from(code: u16) -> Self {
        Route::Code(code)
    }
}

/// A decoded message, borrowing the route and body from the input bytes.
///
/// Which fields are meaningful depends on [`kind`](Self::kind), exactly as in spec §5.2:
///
/// | kind | `id` | `route` |
/// | --- | --- | --- |
/// | request | yes | [`Route::Name`] or [`Route::Code`] |
/// | notify | 0 | [`Route::Name`] or [`Route::Code`] |
/// | response | yes | [`Route::None`] |
/// | push | 0 | [`Route::Name`] or [`Route::Code`] |
///
/// Decoded messages always follow the table; [`encode_message`] refuses ones that don't.
/// A request with id 0 is well-formed here; pinus treats it like a notify (no response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message<'a> {
    /// The message type.
    pub kind: MessageType,
    /// The request id (request, response); 0 for notify and push. The full `u32` range is
    /// supported (pinus breaks at 2^31).
    pub id: u32,
    /// The route ([`Route::None`] for a response).
    pub route: Route<'a>,
    /// The body: everything after the route (JSON in practice; may be empty).
    pub body: &'a [u8],
    /// Flag bit 4, the "gzip" bit. Defined by both pomelo protocol libraries but set and
    /// honoured by no server code; decoded and encoded as is, the body is never (de)compressed.
    pub gzip: bool,
}

impl<'a> Message<'a> {
    /// A request: client → server, answered by a response with the same `id`.
    pub const fn request(id: u32, route: Route<'a>, body: &'a [u8]) -> Message<'a> {
        Message::new(MessageType::Request, id, route, body)
    }

    /// A notify: client → server, never answered.
    pub const fn notify(route: Route<'a>, body: &'a [u8]) -> Message<'a> {
        Message::new(MessageType::Notify, 0, route, body)
    }

    /// A response to request `id`.
    pub const fn response(id: u32, body: &'a [u8]) -> Message<'a> {
        Message::new(MessageType::Response, id, Route::None, body)
    }

    /// A push on `route`.
    pub const fn push(route: Route<'a>, body: &'a [u8]) -> Message<'a> {
        Message::new(MessageType::Push, 0, route, body)
    }

    const fn new(kind: MessageType, id: u32, route: Route<'a>, body: &'a [u8]) -> Message<'a> {
        Message {
            kind,
            id,
            route,
            body,
            gzip: false,
        }
    }

    /// Checks the message against the field table and returns its encoded length.
    fn encoded_len(&self) -> Result<usize, EncodeError> {
        let kind = self.kind;
        if !kind.has_id() && self.id != 0 {
            return Err(EncodeError::UnexpectedId(kind));
        }
        let route_len = match (kind.has_route(), self.route) {
            (false, Route::None) => 0,
            (false, _) => return Err(EncodeError::UnexpectedRoute(kind)),
            (true, Route::None) => return Err(EncodeError::MissingRoute(kind)),
            (true, Route::Code(_)) => 2,
            (true, Route::Name(name)) if name.len() > MAX_ROUTE_LEN => {
                return Err(EncodeError::RouteTooLong(name.len()));
            }
            (true, Route::Name(name)) => 1 + name.len(),
        };
        let id_len = if kind.has_id() { id_len(self.id) } else { 0 };
        Ok(1 + id_len + route_len + self.body.len())
    }

    /// Appends the message; the caller checked it with `encoded_len`.
    fn write(&self, out: &mut Vec<u8>) {
        let mut flag = self.kind.as_u8() << 1;
        if matches!(self.route, Route::Code(_)) {
            flag |= FLAG_ROUTE_CODE;
        }
        if self.gzip {
            flag |= FLAG_GZIP;
        }
        out.push(flag);
        if self.kind.has_id() {
            write_id(self.id, out);
        }
        match self.route {
            Route::None => {}
            Route::Code(code) => out.extend_from_slice(&code.to_be_bytes()),
            Route::Name(name) => {
                out.push(name.len() as u8);
                out.extend_from_slice(name.as_bytes());
            }
        }
        out.extend_from_slice(self.body);
    }
}

/// Why a DATA package body is not a valid message. Every variant is the client's fault; the
/// connection should be closed (pinus drops some of these silently and crashes on others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageError {
    /// The DATA package has an empty body: not even a flag byte. pinus 1.7.4 crashes the whole
    /// connector process on it (spec §5.6).
    Empty,
    /// The flag's type bits hold 4..=7.
    UnknownType(u8),
    /// The flag byte sets a reserved bit (5–7), or the compressed-route bit on a response,
    /// which has no route. No pomelo encoder produces either.
    InvalidFlag(u8),
    /// The bytes end inside the id or the route.
    Truncated,
    /// The id does not fit in a `u32`, or is not in its shortest form (more than 5 bytes, a
    /// 5th byte above `0x0f`, or a redundant final `0x00` group).
    InvalidId,
    /// The uncompressed route is not valid UTF-8.
    InvalidRoute,
}

impl MessageError {
    /// A short static description, for logs and
    /// [`CloseReason::ProtocolViolation`](crate::CloseReason::ProtocolViolation).
    pub const fn as_str(&self) -> &'static str {
        match self {
            MessageError::Empty => "empty message",
            MessageError::UnknownType(_) => "unknown message type",
            MessageError::InvalidFlag(_) => "invalid message flag",
            MessageError::Truncated => "truncated message",
            MessageError::InvalidId => "invalid message id",
            MessageError::InvalidRoute => "message route is not utf-8",
        }
    }
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::UnknownType(t) => write!(f, "unknown message type {t}"),
            MessageError::InvalidFlag(flag) => write!(f, "invalid message flag {flag:#04x}"),
            MessageError::InvalidId => {
                f.write_str("invalid message id: over 32 bits or not in shortest form")
            }
            other => f.write_str(other.as_str()),
        }
    }
}

impl std::error::Error for MessageError {}

/// Why a message could not be encoded. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A request, notify or push without a route.
    MissingRoute(MessageType),
    /// A response with a route (responses carry none).
    UnexpectedRoute(MessageType),
    /// A notify or push with a non-zero id (they carry none).
    UnexpectedId(MessageType),
    /// The uncompressed route is longer than [`MAX_ROUTE_LEN`] bytes.
    RouteTooLong(usize),
    /// The whole message would not fit one package (longer than
    /// [`MAX_BODY_LEN`]).
    TooLarge(usize),
    /// The body does not fit its route's protobuf message (a required field missing, a value
    /// of the wrong type…): see [`Protos`](super::Protos).
    Protobuf(super::protobuf::ProtoEncodeError),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::MissingRoute(kind) => write!(f, "a {kind} message needs a route"),
            EncodeError::UnexpectedRoute(kind) => write!(f, "a {kind} message carries no route"),
            EncodeError::UnexpectedId(kind) => write!(f, "a {kind} message carries no id"),
            EncodeError::RouteTooLong(len) => {
                write!(f, "route of {len} bytes exceeds {MAX_ROUTE_LEN}")
            }
            EncodeError::TooLarge(len) => {
                write!(
                    f,
                    "message of {len} bytes exceeds the package limit of {MAX_BODY_LEN}"
                )
            }
            EncodeError::Protobuf(err) => write!(f, "protobuf body: {err}"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Decodes the body of a DATA package, without copying or allocating.
///
/// Stricter than pinus, which accepts (and mis-decodes) the inputs rejected here: the id must
/// be shortest-form LEB128 within `u32` (pinus breaks on ids ≥ 2^31 anyway), reserved flag bits
/// must be clear. Every valid message re-encodes to exactly the input bytes.
///
/// # Errors
///
/// See [`MessageError`]; an empty body is [`MessageError::Empty`], never a panic.
///
/// # Examples
///
/// ```
/// use gatehouse::protocol::{decode_message, MessageType, Route};
///
/// let msg = decode_message(b"\x00\x01\x04a.bc{}").unwrap();
/// assert_eq!((msg.kind, msg.id), (MessageType::Request, 1));
/// assert_eq!(msg.route, Route::Name("a.bc"));
/// assert_eq!(msg.body, b"{}");
/// ```
pub fn decode_message(buf: &[u8]) -> Result<Message<'_>, MessageError> {
    let (&flag, rest) = buf.split_first().ok_or(MessageError::Empty)?;
    if flag & FLAG_RESERVED != 0 {
        return Err(MessageError::InvalidFlag(flag));
    }
    let type_bits = (flag >> 1) & 0x07;
    let kind = MessageType::from_u8(type_bits).ok_or(MessageError::UnknownType(type_bits))?;
    let compressed = flag & FLAG_ROUTE_CODE != 0;
    if compressed && !kind.has_route() {
        return Err(MessageError::InvalidFlag(flag));
    }
    let (id, rest) = if kind.has_id() {
        read_id(rest)?
    } else {
        (0, rest)
    };
    let (route, body) = if !kind.has_route() {
        (Route::None, rest)
    } else if compressed {
        let (&[hi, lo], body) = rest.split_first_chunk().ok_or(MessageError::Truncated)?;
        (Route::Code(u16::from_be_bytes([hi, lo])), body)
    } else {
        let (&len, rest) = rest.split_first().ok_or(MessageError::Truncated)?;
        let (name, body) = rest
            .split_at_checked(usize::from(len))
            .ok_or(MessageError::Truncated)?;
        let name = std::str::from_utf8(name).map_err(|_| MessageError::InvalidRoute)?;
        (Route::Name(name), body)
    };
    Ok(Message {
        kind,
        id,
        route,
        body,
        gzip: flag & FLAG_GZIP != 0,
    })
}

/// Appends the encoded message (no package header) to `out`, reserving the exact space first.
///
/// # Errors
///
/// See [`EncodeError`]; `out` is unchanged on error.
///
/// # Examples
///
/// ```
/// use gatehouse::protocol::{encode_message, Message};
///
/// let mut out = Vec::new();
/// encode_message(&Message::notify("chat.chatHandler.say".into(), br#"{"t":"hi"}"#), &mut out)
///     .unwrap();
/// assert_eq!(&out[..2], b"\x02\x14");
/// ```
pub fn encode_message(msg: &Message<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let len = msg.encoded_len()?;
    out.reserve_exact(len);
    msg.write(out);
    Ok(())
}

/// Appends a whole DATA package holding `msg` (header and message) to `out`, in one exact
/// reservation.
///
/// # Errors
///
/// See [`EncodeError`]; `out` is unchanged on error.
pub fn encode_data(msg: &Message<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let len = msg.encoded_len()?;
    if len > MAX_BODY_LEN {
        return Err(EncodeError::TooLarge(len));
    }
    out.reserve_exact(HEADER_LEN + len);
    out.extend_from_slice(&header(PackageType::Data, len));
    msg.write(out);
    Ok(())
}

/// Appends a whole DATA package pushing `body` on `route`: what the server sends for
/// `channel.pushMessage` and friends. Pass [`Dictionary::compress`](super::Dictionary::compress)'s
/// result to use a route code when the route has one.
///
/// # Errors
///
/// [`EncodeError::MissingRoute`] for [`Route::None`], [`EncodeError::RouteTooLong`],
/// [`EncodeError::TooLarge`]; `out` is unchanged on error.
///
/// # Examples
///
/// ```
/// use gatehouse::protocol::encode_push;
///
/// let mut out = Vec::new();
/// encode_push("onPush".into(), br#"{"hello":5}"#, &mut out).unwrap();
/// assert_eq!(out, b"\x04\x00\x00\x13\x06\x06onPush{\"hello\":5}");
/// assert_eq!(out.capacity(), out.len());
/// ```
pub fn encode_push(route: Route<'_>, body: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_data(&Message::push(route, body), out)
}

/// [`encode_push`] for a body the caller writes itself (a JSON value serialised straight into
/// the package, with no intermediate buffer): `write_body` must append exactly `body_len` bytes
/// to the vector it is given. Reserves `HEADER_LEN` + the message length exactly once.
///
/// # Errors
///
/// As [`encode_push`], checked before anything is written: `out` is unchanged on error.
pub(crate) fn encode_push_with(
    route: Route<'_>,
    body_len: usize,
    out: &mut Vec<u8>,
    write_body: impl FnOnce(&mut Vec<u8>),
) -> Result<(), EncodeError> {
    let head = Message::push(route, &[]);
    let len = head.encoded_len()?.saturating_add(body_len);
    if len > MAX_BODY_LEN {
        return Err(EncodeError::TooLarge(len));
    }
    out.reserve_exact(HEADER_LEN + len);
    out.extend_from_slice(&header(PackageType::Data, len));
    head.write(out);
    write_body(out);
    Ok(())
}

/// Appends a whole DATA package answering request `id` with `body`.
///
/// # Errors
///
/// [`EncodeError::TooLarge`] only; `out` is unchanged on error.
///
/// # Examples
///
/// ```
/// use gatehouse::protocol::encode_response;
///
/// let mut out = Vec::new();
/// encode_response(300, br#"{"code":200}"#, &mut out).unwrap();
/// assert_eq!(&out[..7], b"\x04\x00\x00\x0f\x04\xac\x02");
/// ```
pub fn encode_response(id: u32, body: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_data(&Message::response(id, body), out)
}

// === LEB128 message ids ===

/// Bytes of the shortest LEB128 encoding of `id` (1..=5).
const fn id_len(id: u32) -> usize {
    match id {
        0..0x80 => 1,
        0x80..0x4000 => 2,
        0x4000..0x20_0000 => 3,
        0x20_0000..0x1000_0000 => 4,
        _ => 5,
    }
}

/// Appends `id` as LEB128: 7 bits per byte, low group first, bit 7 = more bytes follow.
fn write_id(mut id: u32, out: &mut Vec<u8>) {
    while id >= 0x80 {
        out.push(id as u8 | 0x80);
        id >>= 7;
    }
    out.push(id as u8);
}

/// Reads a shortest-form LEB128 `u32` from the start of `buf`; returns it and the rest.
fn read_id(buf: &[u8]) -> Result<(u32, &[u8]), MessageError> {
    let mut id: u32 = 0;
    for (i, &byte) in buf.iter().take(MAX_ID_LEN).enumerate() {
        // The 5th byte holds bits 28..32: 4 bits, and it must be the last.
        if i == MAX_ID_LEN - 1 && byte > 0x0f {
            return Err(MessageError::InvalidId);
        }
        id |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // A zero final group after the first byte is padding: not the shortest form.
            if byte == 0 && i > 0 {
                return Err(MessageError::InvalidId);
            }
            let rest = buf.get(i + 1..).unwrap_or_default();
            return Ok((id, rest));
        }
    }
    // Fewer than 5 bytes, all with the continuation bit.
    Err(MessageError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::package::decode_package;
    use crate::protocol::testutil::{hex, XorShift};

    fn id_bytes(id: u32) -> Vec<u8> {
        let mut out = Vec::new();
        write_id(id, &mut out);
        assert_eq!(out.len(), id_len(id));
        out
    }

    #[test]
    fn leb128_edge_cases() {
        let cases: [(u32, &str); 9] = [
            (0, "00"),
            (1, "01"),
            (127, "7f"),
            (128, "80 01"),
            (300, "ac 02"),
            (16_383, "ff 7f"),
            (16_384, "80 80 01"),
            (1 << 31, "80 80 80 80 08"),
            (u32::MAX, "ff ff ff ff 0f"),
        ];
        for (id, wire) in cases {
            assert_eq!(id_bytes(id), hex(wire), "encode {id}");
            let mut input = hex(wire);
            input.push(0xaa);
            assert_eq!(read_id(&input), Ok((id, &[0xaa][..])), "decode {id}");
        }
    }

    #[test]
    fn leb128_rejects_long_overflowing_and_padded_ids() {
        // 6 bytes.
        assert_eq!(
            read_id(&hex("80 80 80 80 80 00")),
            Err(MessageError::InvalidId)
        );
        assert_eq!(
            read_id(&hex("ff ff ff ff ff 01")),
            Err(MessageError::InvalidId)
        );
        // 5 bytes whose last group overflows 32 bits.
        assert_eq!(
            read_id(&hex("ff ff ff ff 1f")),
            Err(MessageError::InvalidId)
        );
        assert_eq!(
            read_id(&hex("80 80 80 80 10")),
            Err(MessageError::InvalidId)
        );
        // Padded (not shortest form): 0 as `80 00`, 1 as `81 80 00`.
        assert_eq!(read_id(&hex("80 00")), Err(MessageError::InvalidId));
        assert_eq!(read_id(&hex("81 80 00")), Err(MessageError::InvalidId));
        // Truncated.
        assert_eq!(read_id(&[]), Err(MessageError::Truncated));
        assert_eq!(read_id(&hex("80")), Err(MessageError::Truncated));
        assert_eq!(read_id(&hex("ff ff ff ff")), Err(MessageError::Truncated));
    }

    #[test]
    fn leb128_round_trips_across_the_range() {
        let mut rng = XorShift::new(7);
        let mut ids: Vec<u32> = (0..2000).map(|_| rng.next_u64() as u32).collect();
        for shift in 0..32 {
            let p = 1u32 << shift;
            ids.extend([p - 1, p, p.wrapping_add(1)]);
        }
        for id in ids {
            let bytes = id_bytes(id);
            assert_eq!(read_id(&bytes), Ok((id, &[][..])));
        }
    }

    /// Decodes `wire` as a whole DATA package and checks that the message re-encodes exactly,
    /// both alone and as a package.
    fn round_trip(wire: &[u8]) -> Message<'_> {
        let (package, n) = decode_package(wire, MAX_BODY_LEN).unwrap().unwrap();
        assert_eq!((package.kind, n), (PackageType::Data, wire.len()));
        let msg = decode_message(package.body).unwrap();
        let mut alone = Vec::new();
        encode_message(&msg, &mut alone).unwrap();
        assert_eq!(alone, package.body);
        let mut whole = Vec::new();
        encode_data(&msg, &mut whole).unwrap();
        assert_eq!(whole, wire);
        assert_eq!(whole.capacity(), wire.len());
        msg
    }

    #[test]
    fn observed_request() {
        let wire = [
            &hex("04 000028 | 00 01 1c")[..],
            b"connector.entryHandler.entry",
            br#"{"uid":7}"#,
        ]
        .concat();
        let msg = round_trip(&wire);
        assert_eq!(
            msg,
            Message::request(
                1,
                Route::Name("connector.entryHandler.entry"),
                br#"{"uid":7}"#
            )
        );
    }

    #[test]
    fn observed_notify() {
        let wire = [
            &hex("04 000020 | 02 14")[..],
            b"chat.chatHandler.say",
            br#"{"t":"hi"}"#,
        ]
        .concat();
        let msg = round_trip(&wire);
        assert_eq!(
            msg,
            Message::notify(Route::Name("chat.chatHandler.say"), br#"{"t":"hi"}"#)
        );
    }

    #[test]
    fn observed_response_to_id_2() {
        // The capture elides the body; the length says 51 bytes after `04 02`.
        let body = br#"{"code":200,"msg":"ok","data":{"players":[1,2,34]}}"#;
        assert_eq!(body.len(), 0x35 - 2);
        let wire = [&hex("04 000035 | 04 02")[..], &body[..]].concat();
        let msg = round_trip(&wire);
        assert_eq!(msg, Message::response(2, body));
        let mut out = Vec::new();
        encode_response(2, body, &mut out).unwrap();
        assert_eq!(out, wire);
        assert_eq!(out.capacity(), wire.len(), "exact capacity");
    }

    #[test]
    fn observed_push() {
        let wire = [&hex("04 000013 | 06 06")[..], b"onPush", br#"{"hello":5}"#].concat();
        let msg = round_trip(&wire);
        assert_eq!(msg, Message::push(Route::Name("onPush"), br#"{"hello":5}"#));
        let mut out = Vec::new();
        encode_push(Route::Name("onPush"), br#"{"hello":5}"#, &mut out).unwrap();
        assert_eq!(out, wire);
        assert_eq!(out.capacity(), wire.len(), "exact capacity");
    }

    #[test]
    fn compressed_routes_gzip_and_empty_routes() {
        let cases: [(&str, Message<'_>); 6] = [
            (
                "01 05 0001 7b7d",
                Message::request(5, Route::Code(1), b"{}"),
            ),
            ("03 ffff", Message::notify(Route::Code(0xffff), b"")),
            ("07 0000 41", Message::push(Route::Code(0), b"A")),
            ("06 00", Message::push(Route::Name(""), b"")),
            ("00 00 00", Message::request(0, Route::Name(""), b"")),
            ("04 ffffffff0f", Message::response(u32::MAX, b"")),
        ];
        for (wire, expected) in cases {
            let bytes = hex(wire);
            assert_eq!(decode_message(&bytes), Ok(expected), "{wire}");
            let mut out = Vec::new();
            encode_message(&expected, &mut out).unwrap();
            assert_eq!(out, bytes);
        }
        let gz_wire = hex("14 07 78");
        let gz = decode_message(&gz_wire).unwrap();
        assert!(gz.gzip);
        assert_eq!(
            (gz.kind, gz.id, gz.body),
            (MessageType::Response, 7, &b"x"[..])
        );
        let mut out = Vec::new();
        encode_message(&gz, &mut out).unwrap();
        assert_eq!(out, gz_wire);
    }

    #[test]
    fn malformed_messages_are_errors() {
        let cases: [(&str, MessageError); 13] = [
            ("", MessageError::Empty),
            ("08", MessageError::UnknownType(4)),
            ("0e 00", MessageError::UnknownType(7)),
            ("20 01 00", MessageError::InvalidFlag(0x20)),
            ("86 00", MessageError::InvalidFlag(0x86)),
            ("05 01", MessageError::InvalidFlag(0x05)),
            ("00", MessageError::Truncated),
            ("00 81", MessageError::Truncated),
            ("00 01", MessageError::Truncated),
            ("00 01 05 6162", MessageError::Truncated),
            ("07 00", MessageError::Truncated),
            ("00 80 80 80 80 80 01", MessageError::InvalidId),
            ("02 02 c3 28", MessageError::InvalidRoute),
        ];
        for (wire, err) in cases {
            assert_eq!(decode_message(&hex(wire)), Err(err), "{wire}");
        }
    }

    #[test]
    fn every_prefix_of_a_valid_message_decodes_or_errs() {
        let wire = [
            &hex("00 ac02 1c")[..],
            b"connector.entryHandler.entry",
            b"{}",
        ]
        .concat();
        for cut in 0..wire.len() {
            let got = decode_message(&wire[..cut]);
            // Cuts inside the header are errors; cuts inside the body are shorter bodies.
            if cut < 4 + 28 {
                assert!(got.is_err(), "cut {cut}: {got:?}");
            } else {
                assert_eq!(got.unwrap().body, &wire[4 + 28..cut]);
            }
        }
    }

    #[test]
    fn encoder_enforces_the_field_table() {
        let mut out = vec![1, 2];
        let long = "r".repeat(256);
        let bad: [(Message<'_>, EncodeError); 5] = [
            (
                Message::request(1, Route::None, b""),
                EncodeError::MissingRoute(MessageType::Request),
            ),
            (
                Message::push(Route::None, b""),
                EncodeError::MissingRoute(MessageType::Push),
            ),
            (
                Message {
                    route: Route::Code(3),
                    ..Message::response(1, b"")
                },
                EncodeError::UnexpectedRoute(MessageType::Response),
            ),
            (
                Message {
                    id: 9,
                    ..Message::notify(Route::Code(3), b"")
                },
                EncodeError::UnexpectedId(MessageType::Notify),
            ),
            (
                Message::push(Route::Name(&long), b""),
                EncodeError::RouteTooLong(256),
            ),
        ];
        for (msg, err) in bad {
            assert_eq!(encode_message(&msg, &mut out), Err(err.clone()));
            assert_eq!(encode_data(&msg, &mut out), Err(err));
        }
        assert_eq!(out, [1, 2], "nothing written on error");
        // 255 bytes is the longest route.
        encode_message(&Message::push(Route::Name(&long[..255]), b""), &mut out).unwrap();
        assert_eq!(&out[2..4], &[0x06, 0xff]);
    }

    #[test]
    fn oversized_package_is_refused() {
        let body = vec![0u8; MAX_BODY_LEN - 1];
        let mut out = Vec::new();
        // flag + 1-byte id + body = MAX_BODY_LEN + 1
        assert_eq!(
            encode_response(1, &body, &mut out),
            Err(EncodeError::TooLarge(MAX_BODY_LEN + 1))
        );
        assert!(out.is_empty());
        encode_response(1, &body[1..], &mut out).unwrap();
        assert_eq!(&out[..4], &[4, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn error_texts_are_lowercase() {
        assert_eq!(MessageError::Empty.to_string(), "empty message");
        assert_eq!(
            MessageError::UnknownType(5).to_string(),
            "unknown message type 5"
        );
        assert_eq!(
            MessageError::InvalidFlag(0x20).to_string(),
            "invalid message flag 0x20"
        );
        assert_eq!(
            EncodeError::MissingRoute(MessageType::Push).to_string(),
            "a push message needs a route"
        );
        assert_eq!(
            EncodeError::RouteTooLong(300).to_string(),
            "route of 300 bytes exceeds 255"
        );
    }
}
