//! WebSocket frames (RFC 6455 §5), server side: [`FrameDecoder`] for client frames and the
//! `encode_*` functions for server frames.
//!
//! # Decoding
//!
//! The decoder works on the connection's input buffer and never reads a socket. The caller
//! passes the bytes received and not yet consumed; [`FrameDecoder::decode`] returns how many it
//! consumed and one [`WsEvent`]. A frame is decoded once it is *whole* in the buffer: its
//! payload is unmasked in place and lent out as a slice of the caller's buffer, so a complete
//! binary message costs no copy and no allocation. An incomplete frame consumes nothing
//! ([`WsEvent::NeedMore`]): the caller keeps the bytes, appends what arrives next and calls
//! again. Its header is validated as soon as it is in the buffer, so a frame announcing more
//! than the configured maximum is refused before its payload is buffered: the caller never holds
//! more than `max_message` + 14 bytes of one connection's input.
//!
//! Fragmented messages (a data frame without FIN, then continuations) are reassembled in a
//! per-connection buffer whose capacity is kept for the next message, and which is bounded by
//! the same maximum. Control frames may arrive between fragments.
//!
//! # Decisions
//!
//! * **Text messages are tolerated** and delivered as [`WsEvent::Binary`] bytes once their UTF-8
//!   is validated (invalid: close 1007). pinus does the same: `ws` hands a text message to
//!   `Package.decode` as a buffer, and a pomelo package whose body is JSON is valid UTF-8.
//! * **Pongs are ignored**; pomelo's liveness is its own HEARTBEAT package.
//! * **No extension is negotiated** (the handshake answers none), so any RSV bit is an error.
//! * Length fields that are longer than necessary (a 16-bit length under 126) are accepted:
//!   RFC 6455 asks senders for the minimal form but gives receivers no reason to refuse it.
//! * Every protocol violation is final: [`WsError::close_code`] is the code to close with, and
//!   the decoder discards any later input.
//!
//! # Encoding
//!
//! Server frames are never masked. [`encode_binary_header`] appends just the header, so a
//! caller can append the payload bytes itself, or several pomelo packages back to back
//! (server→client frames may carry several, spec §5.1); [`binary_header`] returns it as a value
//! for vectored writes.

use std::fmt;
use std::str;

/// The default [`FrameDecoder`] limit on one message's payload: 64 KiB, far above any pomelo
/// request a game client sends, and bounded so that a peer cannot make the server buffer much.
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024;

/// The longest frame header: 2 bytes, an 8-byte extended length, a 4-byte mask.
#[cfg(feature = "internals")] // only the fuzz harnesses and tests use it
pub const MAX_HEADER_LEN: usize = 14;

/// The most a control frame (close, ping, pong) carries, RFC 6455 §5.5.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// What [`FrameDecoder::decode`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsEvent<'a> {
    /// A complete data message: its unmasked payload, which may hold several pomelo packages
    /// (decode them all). Borrowed from the caller's buffer, or from the decoder's reassembly
    /// buffer for a fragmented message, until the next `decode` call. Text messages arrive here
    /// too (see the module docs).
    Binary(&'a [u8]),
    /// A ping: answer with [`encode_pong`] of this payload (at most 125 bytes).
    Ping(&'a [u8]),
    /// The client closed. Answer with [`encode_close`]`(code, "", out)` (RFC 6455 §5.5.1: echo
    /// the code), then close the connection once that is written. The decoder is finished.
    Close {
        /// The status code, `None` if the close frame carried none (1005 on the JS side).
        code: Option<u16>,
        /// The UTF-8 reason, possibly empty (at most 123 bytes).
        reason: &'a str,
    },
    /// No complete frame in the buffer: keep the unconsumed bytes, append more, call again.
    NeedMore,
}

/// The outcome of one [`FrameDecoder::decode`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// Bytes at the start of the buffer that are done with: drop them before the next call.
    /// May be non-zero with [`WsEvent::NeedMore`] (pongs and fragments were absorbed).
    pub consumed: usize,
    /// What was found.
    pub event: WsEvent<'a>,
}

/// A violation of RFC 6455 by the client. The connection is over: send
/// [`encode_close`]`(Some(err.close_code()), "", out)`, flush, close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WsError {
    /// An RSV bit is set, but no extension was negotiated (1002).
    ReservedBits,
    /// A reserved opcode (3–7, 11–15) (1002).
    ReservedOpcode(u8),
    /// A client frame without a mask; RFC 6455 §5.1 requires the server to close (1002).
    Unmasked,
    /// A control frame without FIN or with more than 125 bytes (1002).
    BadControlFrame,
    /// A 64-bit length with its most significant bit set (1002).
    BadLength,
    /// A continuation frame with no fragmented message in progress (1002).
    UnexpectedContinuation,
    /// A new data frame while a fragmented message is still in progress (1002).
    ExpectedContinuation,
    /// A close frame whose payload is one byte, or whose code may not be sent (1002).
    BadClose,
    /// A message (or its fragments together) longer than the decoder's maximum (1009).
    MessageTooBig,
    /// A text message or a close reason that is not UTF-8 (1007).
    InvalidUtf8,
}

impl WsError {
    /// The close code to send: 1002 (protocol error), 1007 (invalid data) or 1009 (too big).
    pub fn close_code(&self) -> u16 {
        match self {
            WsError::MessageTooBig => 1009,
            WsError::InvalidUtf8 => 1007,
            _ => 1002,
        }
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::ReservedBits => f.write_str("websocket frame with reserved bits set"),
            WsError::ReservedOpcode(op) => write!(f, "websocket frame with reserved opcode {op}"),
            WsError::Unmasked => f.write_str("unmasked websocket frame from a client"),
            WsError::BadControlFrame => f.write_str("fragmented or oversized control frame"),
            WsError::BadLength => f.write_str("websocket frame length over 2^63"),
            WsError::UnexpectedContinuation => f.write_str("continuation frame without a message"),
            WsError::ExpectedContinuation => f.write_str("data frame inside a fragmented message"),
            WsError::BadClose => f.write_str("invalid close frame"),
            WsError::MessageTooBig => f.write_str("websocket message too big"),
            WsError::InvalidUtf8 => f.write_str("invalid utf-8 in a text message or close reason"),
        }
    }
}

impl std::error::Error for WsError {}

/// One connection's client-frame decoder.
///
/// Holds the limit, the reassembly buffer of a fragmented message (empty, no heap memory, until
/// a client fragments; then its capacity is kept for the next one) and two flags. Not
/// thread-safe by design: one reactor thread owns a connection.
///
/// Cost: a whole unfragmented message is decoded with one pass over its payload (the unmasking,
/// 8 bytes at a time), no copy, no allocation. A fragment is copied once into the reassembly
/// buffer. Never panics, whatever the input.
///
/// # Examples
///
/// ```
/// # use gatehouse::__private::ws::{FrameDecoder, WsEvent};
/// let mut decoder = FrameDecoder::new(64 * 1024);
/// // RFC 6455 §5.7: a masked text frame holding "Hello", then half of the next frame.
/// let mut input = *b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58\x82\x85";
/// let first = decoder.decode(&mut input).unwrap();
/// assert_eq!(first.event, WsEvent::Binary(b"Hello"));
/// assert_eq!(first.consumed, 11);
/// let rest = decoder.decode(&mut input[11..]).unwrap();
/// assert_eq!((rest.consumed, rest.event), (0, WsEvent::NeedMore));
/// ```
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    /// Longest payload of one message, fragments together.
    max_message: usize,
    /// Unmasked payload of the fragmented message in progress; emptied lazily (see `lent`).
    message: Vec<u8>,
    /// Opcode (text or binary) of the fragmented message in progress, if any.
    fragmented: Option<u8>,
    /// The last event lent `message` out: empty it at the next call.
    lent: bool,
    /// A close frame or an error ended the stream: discard everything.
    finished: bool,
}

impl Default for FrameDecoder {
    fn default() -> FrameDecoder {
        FrameDecoder::new(DEFAULT_MAX_MESSAGE)
    }
}

/// A parsed and validated frame header.
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    header_len: usize,
    payload_len: usize,
}

impl FrameDecoder {
    /// A decoder that refuses messages longer than `max_message` bytes (close 1009).
    pub fn new(max_message: usize) -> FrameDecoder {
        FrameDecoder {
            max_message,
            message: Vec::new(),
            fragmented: None,
            lent: false,
            finished: false,
        }
    }

    /// The configured limit on one message's payload.
    #[cfg(feature = "internals")] // only the fuzz harnesses and tests use it
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// True once a close frame or an error ended the stream; `decode` then consumes and
    /// ignores everything.
    #[cfg(feature = "internals")] // only the fuzz harnesses and tests use it
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Heap bytes the decoder holds (the reassembly buffer's capacity; 0 until a client sends
    /// a fragmented message).
    pub fn heap_bytes(&self) -> usize {
        self.message.capacity()
    }

    /// Frees the reassembly buffer if no fragmented message is in progress (for connections
    /// going idle). Returns the bytes freed.
    #[cfg(feature = "internals")] // only the fuzz harnesses and tests use it
    pub fn release_memory(&mut self) -> usize {
        if self.fragmented.is_some() {
            return 0;
        }
        let freed = self.message.capacity();
        self.message = Vec::new();
        self.lent = false;
        freed
    }

    /// Decodes from the start of `buf`, the connection's input not yet consumed.
    ///
    /// Returns as soon as it has an event for the caller: a message, a ping, a close, or
    /// [`WsEvent::NeedMore`] when the rest of `buf` is an incomplete frame (or empty). Pongs and
    /// non-final fragments are absorbed on the way. The first [`Decoded::consumed`] bytes of
    /// `buf` are consumed (and were unmasked in place); the others are left untouched, so the
    /// caller can append to them and call again. Loop until `NeedMore`.
    ///
    /// # Errors
    ///
    /// A [`WsError`] when the client breaks RFC 6455 or the size limit: close the connection with
    /// [`WsError::close_code`]. The decoder is then finished.
    pub fn decode<'a>(&'a mut self, buf: &'a mut [u8]) -> Result<Decoded<'a>, WsError> {
        if self.lent {
            self.message.clear();
            self.lent = false;
        }
        if self.finished {
            return Ok(Decoded {
                consumed: buf.len(),
                event: WsEvent::NeedMore,
            });
        }
        let mut pos = 0;
        loop {
            let header = match self.parse_header(&buf[pos..]) {
                Ok(Some(h)) => h,
                Ok(None) => {
                    return Ok(Decoded {
                        consumed: pos,
                        event: WsEvent::NeedMore,
                    })
                }
                Err(e) => return Err(self.fail(e)),
            };
            let start = pos + header.header_len;
            // `payload_len <= max_message` or 125, and `buf.len()` bounds the comparison: no
            // overflow unless max_message is near usize::MAX, which checked_add turns into
            // "incomplete" (a buffer that long cannot exist).
            let Some(end) = start
                .checked_add(header.payload_len)
                .filter(|&e| e <= buf.len())
            else {
                return Ok(Decoded {
                    consumed: pos,
                    event: WsEvent::NeedMore,
                });
            };
            unmask(&mut buf[start..end], header.mask);
            pos = end;
            match header.opcode {
                OP_TEXT | OP_BINARY if header.fin => {
                    if header.opcode == OP_TEXT && str::from_utf8(&buf[start..end]).is_err() {
                        return Err(self.fail(WsError::InvalidUtf8));
                    }
                    return Ok(Decoded {
                        consumed: pos,
                        event: WsEvent::Binary(&buf[start..end]),
                    });
                }
                OP_TEXT | OP_BINARY | OP_CONTINUATION => {
                    if header.opcode != OP_CONTINUATION {
                        // The first fragment (a final text/binary frame returned above).
                        self.fragmented = Some(header.opcode);
                    }
                    self.append_fragment(&buf[start..end]);
                    if !header.fin {
                        continue;
                    }
                    let text = self.fragmented.take() == Some(OP_TEXT);
                    self.lent = true;
                    if text && str::from_utf8(&self.message).is_err() {
                        return Err(self.fail(WsError::InvalidUtf8));
                    }
                    return Ok(Decoded {
                        consumed: pos,
                        event: WsEvent::Binary(&self.message),
                    });
                }
                OP_PING => {
                    return Ok(Decoded {
                        consumed: pos,
                        event: WsEvent::Ping(&buf[start..end]),
                    })
                }
                OP_CLOSE => {
                    let (code, reason) = match parse_close(&buf[start..end]) {
                        Ok(close) => close,
                        Err(e) => return Err(self.fail(e)),
                    };
                    self.finished = true;
                    return Ok(Decoded {
                        consumed: pos,
                        event: WsEvent::Close { code, reason },
                    });
                }
                _ => {} // OP_PONG: ignored.
            }
        }
    }

    fn fail(&mut self, e: WsError) -> WsError {
        self.finished = true;
        e
    }

    /// Appends an unmasked fragment to the reassembly buffer. `parse_header` checked that the
    /// message stays within `max_message`; growth doubles (amortised O(1) per byte) but the
    /// capacity never exceeds `max_message`.
    fn append_fragment(&mut self, fragment: &[u8]) {
        let needed = self.message.len() + fragment.len();
        if needed > self.message.capacity() {
            let target = (self.message.capacity() * 2).clamp(needed, self.max_message.max(needed));
            self.message.reserve_exact(target - self.message.len());
        }
        self.message.extend_from_slice(fragment);
    }

    /// Parses and validates the header at the start of `buf`: `Ok(None)` if incomplete. Each
    /// check runs as soon as its bytes are present, so a bad frame is refused before its
    /// payload is buffered. Changes no state: an incomplete frame is parsed again next time.
    fn parse_header(&self, buf: &[u8]) -> Result<Option<Header>, WsError> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        let fin = b0 & 0x80 != 0;
        if b0 & 0x70 != 0 {
            return Err(WsError::ReservedBits);
        }
        let opcode = b0 & 0x0F;
        let control = opcode >= OP_CLOSE;
        match opcode {
            OP_CONTINUATION if self.fragmented.is_none() => {
                return Err(WsError::UnexpectedContinuation)
            }
            OP_TEXT | OP_BINARY if self.fragmented.is_some() => {
                return Err(WsError::ExpectedContinuation)
            }
            OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG => {}
            _ => return Err(WsError::ReservedOpcode(opcode)),
        }
        if control && !fin {
            return Err(WsError::BadControlFrame);
        }
        let Some(&b1) = buf.get(1) else {
            return Ok(None);
        };
        if b1 & 0x80 == 0 {
            return Err(WsError::Unmasked);
        }
        let (len, len_bytes) = match b1 & 0x7F {
            126 => match buf.get(2..4) {
                Some(&[a, b]) => (u64::from(u16::from_be_bytes([a, b])), 2),
                _ => return Ok(None),
            },
            127 => match buf.get(2..10).and_then(|s| <[u8; 8]>::try_from(s).ok()) {
                Some(bytes) => (u64::from_be_bytes(bytes), 8),
                None => return Ok(None),
            },
            n => (u64::from(n), 0),
        };
        if len >> 63 != 0 {
            return Err(WsError::BadLength);
        }
        if control && len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(WsError::BadControlFrame);
        }
        // The message so far (fragments already absorbed) plus this frame must fit.
        let so_far = if opcode == OP_CONTINUATION {
            self.message.len() as u64
        } else {
            0
        };
        if !control && so_far.saturating_add(len) > self.max_message as u64 {
            return Err(WsError::MessageTooBig);
        }
        let mask_at = 2 + len_bytes;
        let Some(&[m0, m1, m2, m3]) = buf.get(mask_at..mask_at + 4) else {
            return Ok(None);
        };
        Ok(Some(Header {
            fin,
            opcode,
            mask: [m0, m1, m2, m3],
            header_len: mask_at + 4,
            // len <= max_message (a usize) or <= 125 here.
            payload_len: len as usize,
        }))
    }
}

/// XORs `payload` with the 4-byte `mask`, starting at mask offset 0 (RFC 6455 §5.3). Eight
/// bytes at a time; the compiler vectorises the loop.
pub fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let (words, tail) = payload.as_chunks_mut::<8>();
    for w in words {
        *w = (u64::from_ne_bytes(*w) ^ wide).to_ne_bytes();
    }
    // The tail starts at a multiple of 8, so at mask offset 0.
    for (b, m) in tail.iter_mut().zip(mask.iter().cycle()) {
        *b ^= m;
    }
}

/// Parses a close frame's payload into (code, reason).
fn parse_close(payload: &[u8]) -> Result<(Option<u16>, &str), WsError> {
    match payload {
        [] => Ok((None, "")),
        [_] => Err(WsError::BadClose),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            if !close_code_may_be_sent(code) {
                return Err(WsError::BadClose);
            }
            let reason = str::from_utf8(reason).map_err(|_| WsError::InvalidUtf8)?;
            Ok((Some(code), reason))
        }
    }
}

/// Close codes an endpoint may put on the wire (RFC 6455 §7.4, the IANA registry up to 1014,
/// and the 3000–4999 ranges for libraries and applications); 1004–1006 and 1015 are reserved.
pub fn close_code_may_be_sent(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A server frame header held by value, for vectored writes (`writev` of header + payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    bytes: [u8; 10],
    len: u8,
}

impl FrameHeader {
    /// The header bytes (2, 4 or 10 of them).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// The header of an unmasked final binary frame carrying `payload_len` bytes.
pub fn binary_header(payload_len: usize) -> FrameHeader {
    header(0x80 | OP_BINARY, payload_len)
}

fn header(b0: u8, payload_len: usize) -> FrameHeader {
    let mut bytes = [0u8; 10];
    bytes[0] = b0;
    let len = match payload_len {
        0..=125 => {
            bytes[1] = payload_len as u8;
            2
        }
        126..=0xFFFF => {
            bytes[1] = 126;
            bytes[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
            4
        }
        _ => {
            bytes[1] = 127;
            bytes[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
            10
        }
    };
    FrameHeader { bytes, len }
}

/// The length of a server frame header for a `payload_len`-byte payload: 2, 4 or 10.
pub fn header_len(payload_len: usize) -> usize {
    match payload_len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    }
}

/// Appends the header of an unmasked final binary frame of `payload_len` bytes to `out`; the
/// caller appends exactly `payload_len` payload bytes after it (one pomelo package or several).
/// Allocates only if `out` must grow.
///
/// # Examples
///
/// ```
/// # use gatehouse::__private::ws::encode_binary_header;
/// let heartbeat = [3u8, 0, 0, 0]; // a pomelo HEARTBEAT package
/// let mut out = Vec::new();
/// encode_binary_header(heartbeat.len(), &mut out);
/// out.extend_from_slice(&heartbeat);
/// assert_eq!(out, [0x82, 4, 3, 0, 0, 0]);
/// ```
pub fn encode_binary_header(payload_len: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(binary_header(payload_len).as_bytes());
}

/// Appends a whole unmasked final binary frame carrying `payload` to `out`.
#[cfg(feature = "internals")] // only the fuzz harnesses and tests use it
pub fn encode_binary(payload: &[u8], out: &mut Vec<u8>) {
    encode_binary_header(payload.len(), out);
    out.extend_from_slice(payload);
}

/// Appends a pong frame answering a ping with `payload` (cut to 125 bytes, which a payload from
/// [`WsEvent::Ping`] never exceeds).
pub fn encode_pong(payload: &[u8], out: &mut Vec<u8>) {
    let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
    out.extend_from_slice(header(0x80 | OP_PONG, payload.len()).as_bytes());
    out.extend_from_slice(payload);
}

/// Appends a close frame to `out`: empty for `code: None`, else the code and `reason` (cut to
/// 123 bytes at a character boundary, the most a control frame holds).
///
/// A code that may not be sent on the wire (1005, 1006, 1015, or outside the registered
/// ranges, see [`close_code_may_be_sent`]) is replaced by 1011 rather than put on the wire.
pub fn encode_close(code: Option<u16>, reason: &str, out: &mut Vec<u8>) {
    let Some(code) = code else {
        out.extend_from_slice(&[0x80 | OP_CLOSE, 0]);
        return;
    };
    let code = if close_code_may_be_sent(code) {
        code
    } else {
        1011
    };
    let mut cut = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let reason = &reason.as_bytes()[..cut];
    out.extend_from_slice(header(0x80 | OP_CLOSE, 2 + reason.len()).as_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason);
}
