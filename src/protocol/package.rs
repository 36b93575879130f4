//! The package layer: a 4-byte header (type, 24-bit big-endian body length) and the body.
//!
//! ```text
//! +--------+-------------------------+-----------------+
//! | type:1 | body length: 3 bytes BE | body (length B) |
//! +--------+-------------------------+-----------------+
//! ```

use std::fmt;

/// Length of a package header in bytes: the type byte and the 24-bit body length.
pub const HEADER_LEN: usize = 4;

/// The largest body the 24-bit length field can announce: 2^24 − 1 bytes.
pub const MAX_BODY_LEN: usize = 0x00ff_ffff;

/// The type byte of a package (spec §5.1).
///
/// | value | type | direction | body |
/// | --- | --- | --- | --- |
/// | 1 | [`Handshake`](Self::Handshake) | both | UTF-8 JSON |
/// | 2 | [`HandshakeAck`](Self::HandshakeAck) | client → server | empty |
/// | 3 | [`Heartbeat`](Self::Heartbeat) | both | empty |
/// | 4 | [`Data`](Self::Data) | both | a [`Message`](super::Message) |
/// | 5 | [`Kick`](Self::Kick) | server → client | `{"reason":"…"}` |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PackageType {
    /// The client's handshake request, or the server's reply to it (JSON body).
    Handshake = 1,
    /// The client acknowledges the handshake reply; the connection is then working.
    HandshakeAck = 2,
    /// A heartbeat, either way; the server echoes each client heartbeat.
    Heartbeat = 3,
    /// A pomelo message (request, notify, response or push).
    Data = 4,
    /// The server kicks the client, with a JSON `{"reason":"…"}` body, then closes.
    Kick = 5,
}

impl PackageType {
    /// The type for a header's type byte, or `None` if the byte is not one of 1..=5.
    ///
    /// # Examples
    ///
    /// ```
    /// use gatehouse::protocol::PackageType;
    ///
    /// assert_eq!(PackageType::from_u8(4), Some(PackageType::Data));
    /// assert_eq!(PackageType::from_u8(9), None);
    /// ```
    pub const fn from_u8(byte: u8) -> Option<PackageType> {
        Some(match byte {
            1 => PackageType::Handshake,
            2 => PackageType::HandshakeAck,
            3 => PackageType::Heartbeat,
            4 => PackageType::Data,
            5 => PackageType::Kick,
            _ => return None,
        })
    }

    /// The type byte written in the header.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }
}

/// One decoded package: its type and its body, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Package<'a> {
    /// The package type.
    pub kind: PackageType,
    /// The body (possibly empty), exactly as many bytes as the header announced.
    pub body: &'a [u8],
}

impl Package<'_> {
    /// Bytes the package takes on the wire: header plus body.
    pub const fn encoded_len(&self) -> usize {
        HEADER_LEN + self.body.len()
    }

    /// Appends the encoded package to `out`; see [`encode_package`].
    ///
    /// # Errors
    ///
    /// [`PackageError::TooLarge`] if the body is longer than [`MAX_BODY_LEN`].
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), PackageError> {
        encode_package(self.kind, self.body, out)
    }
}

/// Why a package could not be decoded or encoded. A decode error is fatal for the stream: the
/// package boundaries are lost, so the connection must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PackageError {
    /// The type byte is not one of 1..=5. pinus closes the connection on it too.
    InvalidType(u8),
    /// The body is longer than allowed: on decode, the header announced more than the
    /// configured `max_body` (reported before any of the body arrives); on encode, the body does
    /// not fit the 24-bit length field.
    TooLarge {
        /// The body length announced or given.
        len: usize,
        /// The limit it exceeds.
        max: usize,
    },
}

impl PackageError {
    /// A short static description, for logs and
    /// [`CloseReason::ProtocolViolation`](crate::CloseReason::ProtocolViolation).
    pub const fn as_str(&self) -> &'static str {
        match self {
            PackageError::InvalidType(_) => "invalid package type",
            PackageError::TooLarge { .. } => "package too large",
        }
    }
}

impl fmt::Display for PackageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackageError::InvalidType(t) => write!(f, "invalid package type {t}"),
            PackageError::TooLarge { len, max } => {
                write!(f, "package body of {len} bytes exceeds the limit of {max}")
            }
        }
    }
}

impl std::error::Error for PackageError {}

/// Decodes the first package of `buf`, without copying or allocating.
///
/// Returns:
/// * `Ok(Some((package, consumed)))` when `buf` starts with a whole package; the package's
///   body borrows `buf`, and the caller drops the first `consumed` bytes before the next call;
/// * `Ok(None)` when more bytes are needed: the caller keeps `buf` and calls again once more
///   bytes arrived. This makes the decoder stateless and correct for any chunking of a stream;
/// * `Err` as soon as the bytes cannot start a valid package: an invalid type byte is reported
///   as soon as that first byte is there, and a body longer than `max_body` as soon as the
///   4-byte header is complete, before any of the body arrives, so a peer can never make the
///   caller wait for (or buffer) more than `HEADER_LEN + max_body` bytes.
///
/// `max_body` is capped at [`MAX_BODY_LEN`]; pass `MAX_BODY_LEN` for pomelo's only limit.
///
/// # Errors
///
/// [`PackageError::InvalidType`] or [`PackageError::TooLarge`]; the stream cannot be resynced.
///
/// # Examples
///
/// ```
/// use gatehouse::protocol::{decode_package, PackageType};
///
/// let stream = b"\x03\x00\x00\x00\x04\x00\x00\x02\x06\x00\x04\x00";
/// let (first, n) = decode_package(stream, 1024).unwrap().unwrap();
/// assert_eq!(first.kind, PackageType::Heartbeat);
/// let (second, m) = decode_package(&stream[n..], 1024).unwrap().unwrap();
/// assert_eq!((second.kind, second.body), (PackageType::Data, &b"\x06\x00"[..]));
/// // Only part of the next header: wait for more.
/// assert_eq!(decode_package(&stream[n + m..], 1024), Ok(None));
/// ```
pub fn decode_package(
    buf: &[u8],
    max_body: usize,
) -> Result<Option<(Package<'_>, usize)>, PackageError> {
    let Some(&type_byte) = buf.first() else {
        return Ok(None);
    };
    let kind = PackageType::from_u8(type_byte).ok_or(PackageError::InvalidType(type_byte))?;
    let &[_, l0, l1, l2, ..] = buf else {
        return Ok(None);
    };
    let len = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
    let max = max_body.min(MAX_BODY_LEN);
    if len > max {
        return Err(PackageError::TooLarge { len, max });
    }
    let end = HEADER_LEN + len;
    Ok(buf
        .get(HEADER_LEN..end)
        .map(|body| (Package { kind, body }, end)))
}

/// Writes the 4-byte header for a body of `len` bytes (`len` ≤ [`MAX_BODY_LEN`], checked by
/// the callers).
pub(crate) fn header(kind: PackageType, len: usize) -> [u8; HEADER_LEN] {
    debug_assert!(len <= MAX_BODY_LEN);
    [kind.as_u8(), (len >> 16) as u8, (len >> 8) as u8, len as u8]
}

/// Appends one package (header and body) to `out`, reserving the exact space first.
///
/// # Errors
///
/// [`PackageError::TooLarge`] if `body` is longer than [`MAX_BODY_LEN`]; `out` is unchanged.
///
/// # Examples
///
/// ```
/// use gatehouse::protocol::{encode_package, PackageType};
///
/// let mut out = Vec::new();
/// encode_package(PackageType::Kick, br#"{"reason":"bye"}"#, &mut out).unwrap();
/// assert_eq!(&out[..4], b"\x05\x00\x00\x10");
/// ```
pub fn encode_package(
    kind: PackageType,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), PackageError> {
    if body.len() > MAX_BODY_LEN {
        return Err(PackageError::TooLarge {
            len: body.len(),
            max: MAX_BODY_LEN,
        });
    }
    out.reserve_exact(HEADER_LEN + body.len());
    out.extend_from_slice(&header(kind, body.len()));
    out.extend_from_slice(body);
    Ok(())
}

/// An incremental package decoder that owns a bounded buffer: push received chunks, pull whole
/// packages. A convenience over [`decode_package`] for clients and tests.
///
/// The buffer never holds more than `HEADER_LEN + max_body` bytes, whatever the peer announces,
/// and it grows only as bytes actually arrive. [`push`](Self::push) therefore takes only as much
/// of a chunk as fits; [`feed`](Self::feed) loops push and pull for you.
///
/// After an error the decoder is stuck: every later [`next_package`](Self::next_package)
/// returns the same error (the stream cannot be resynced).
///
/// # Examples
///
/// ```
/// use gatehouse::protocol::{PackageDecoder, PackageType};
///
/// let mut decoder = PackageDecoder::new(1024);
/// let mut kinds = Vec::new();
/// for chunk in [&b"\x03\x00"[..], b"\x00\x00\x02", b"\x00\x00\x00"] {
///     decoder.feed(chunk, |p| kinds.push(p.kind)).unwrap();
/// }
/// assert_eq!(kinds, [PackageType::Heartbeat, PackageType::HandshakeAck]);
/// ```
#[derive(Debug, Clone)]
pub struct PackageDecoder {
    /// Received bytes; `buf[start..]` are not yet consumed.
    buf: Vec<u8>,
    /// Start of the unconsumed bytes (`start <= buf.len()`).
    start: usize,
    /// The body limit, at most [`MAX_BODY_LEN`].
    max_body: usize,
}

impl PackageDecoder {
    /// A decoder accepting bodies of up to `max_body` bytes (capped at [`MAX_BODY_LEN`]).
    /// Allocates nothing until bytes are pushed.
    pub fn new(max_body: usize) -> PackageDecoder {
        PackageDecoder {
            buf: Vec::new(),
            start: 0,
            max_body: max_body.min(MAX_BODY_LEN),
        }
    }

    /// The body limit in force.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// The most bytes the decoder ever buffers: one whole package of the largest allowed body.
    pub fn buffer_limit(&self) -> usize {
        HEADER_LEN + self.max_body
    }

    /// Bytes received but not yet returned as packages.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Heap bytes the decoder holds: never more than [`buffer_limit`](Self::buffer_limit).
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity()
    }

    /// Copies as much of `chunk` as fits under [`buffer_limit`](Self::buffer_limit) and returns
    /// how many bytes it took. It takes at least one byte whenever `chunk` is non-empty and
    /// [`next_package`](Self::next_package) last returned `Ok(None)`.
    pub fn push(&mut self, chunk: &[u8]) -> usize {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let limit = self.buffer_limit();
        let take = chunk.len().min(limit - self.buf.len());
        let needed = self.buf.len() + take;
        if needed > self.buf.capacity() {
            // Geometric growth, capped at the limit (plain `Vec` growth could double past it).
            let target = needed.max(limit.min(self.buf.capacity() * 2));
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf
            .extend_from_slice(chunk.get(..take).unwrap_or_default());
        take
    }

    /// The next whole package, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    ///
    /// As [`decode_package`]; the error repeats on every later call.
    pub fn next_package(&mut self) -> Result<Option<Package<'_>>, PackageError> {
        let pending = self.buf.get(self.start..).unwrap_or_default();
        match decode_package(pending, self.max_body)? {
            Some((package, consumed)) => {
                self.start += consumed;
                Ok(Some(package))
            }
            None => Ok(None),
        }
    }

    /// Pushes all of `chunk`, calling `on_package` for every package it completes, in order.
    ///
    /// # Errors
    ///
    /// The first decode error; packages before it have been delivered.
    pub fn feed(
        &mut self,
        mut chunk: &[u8],
        mut on_package: impl FnMut(Package<'_>),
    ) -> Result<(), PackageError> {
        loop {
            let taken = self.push(chunk);
            chunk = chunk.get(taken..).unwrap_or_default();
            while let Some(package) = self.next_package()? {
                on_package(package);
            }
            // After draining, less than one whole package is pending, so the next push takes
            // at least one byte: this loop ends.
            if chunk.is_empty() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testutil::{hex, XorShift};

    /// Packages (type, body), bytes left pending, and the error that stopped decoding.
    type Decoded = (Vec<(PackageType, Vec<u8>)>, usize, Option<PackageError>);

    /// Decodes a whole buffer with [`decode_package`]; returns the packages (type, body), the
    /// number of bytes left undecoded, and the error that stopped it, if any.
    fn decode_all(mut buf: &[u8], max: usize) -> Decoded {
        let mut out = Vec::new();
        loop {
            match decode_package(buf, max) {
                Ok(Some((p, n))) => {
                    out.push((p.kind, p.body.to_vec()));
                    buf = &buf[n..];
                }
                Ok(None) => return (out, buf.len(), None),
                Err(e) => return (out, buf.len(), Some(e)),
            }
        }
    }

    /// Feeds `stream` to a [`PackageDecoder`] in the given chunk sizes.
    fn decode_chunked(stream: &[u8], max: usize, sizes: &mut dyn FnMut() -> usize) -> Decoded {
        let mut decoder = PackageDecoder::new(max);
        let mut out = Vec::new();
        let mut rest = stream;
        while !rest.is_empty() {
            let n = sizes().clamp(1, rest.len());
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            if let Err(e) = decoder.feed(chunk, |p| out.push((p.kind, p.body.to_vec()))) {
                return (out, decoder.pending(), Some(e));
            }
            assert!(decoder.pending() <= decoder.buffer_limit());
        }
        (out, decoder.pending(), None)
    }

    /// The observed captures of spec §5.2, as whole packages.
    fn captures() -> Vec<Vec<u8>> {
        [
            hex("01 00005f").into_iter().chain(
                br#"{"sys":{"type":"js-websocket","version":"0.0.1","rsa":{},"protoVersion":0},"user":{"name":"x"}}"#
                    .iter()
                    .copied(),
            ).collect::<Vec<u8>>(),
            [&hex("01 000037")[..], br#"{"code":200,"sys":{"heartbeat":2},"user":{"welcome":1}}"#].concat(),
            hex("02 000000"),
            hex("03 000000"),
            [&hex("04 000028 00 01 1c")[..], b"connector.entryHandler.entry", br#"{"uid":7}"#].concat(),
            [&hex("04 000020 02 14")[..], b"chat.chatHandler.say", br#"{"t":"hi"}"#].concat(),
            [&hex("04 000013 06 06")[..], b"onPush", br#"{"hello":5}"#].concat(),
            [&hex("05 000010")[..], br#"{"reason":"bye"}"#].concat(),
        ]
        .into()
    }

    #[test]
    fn captures_round_trip_byte_exactly() {
        for wire in captures() {
            let (p, n) = decode_package(&wire, MAX_BODY_LEN).unwrap().unwrap();
            assert_eq!(n, wire.len(), "one whole package: {wire:02x?}");
            assert_eq!(p.encoded_len(), wire.len());
            let mut again = Vec::new();
            p.encode(&mut again).unwrap();
            assert_eq!(again, wire);
            assert_eq!(again.capacity(), wire.len(), "exact reservation");
        }
    }

    #[test]
    fn header_length_is_24_bit_big_endian() {
        let body = vec![7u8; 0x01_02_03];
        let mut out = Vec::new();
        encode_package(PackageType::Data, &body, &mut out).unwrap();
        assert_eq!(&out[..4], &[4, 0x01, 0x02, 0x03]);
        let (p, n) = decode_package(&out, MAX_BODY_LEN).unwrap().unwrap();
        assert_eq!(
            (p.kind, p.body.len(), n),
            (PackageType::Data, 0x01_02_03, out.len())
        );
    }

    #[test]
    fn encode_rejects_bodies_over_24_bits_and_leaves_out_alone() {
        let body = vec![0u8; MAX_BODY_LEN + 1];
        let mut out = vec![9];
        assert_eq!(
            encode_package(PackageType::Data, &body, &mut out),
            Err(PackageError::TooLarge {
                len: MAX_BODY_LEN + 1,
                max: MAX_BODY_LEN
            })
        );
        assert_eq!(out, [9]);
        // The largest legal body encodes.
        encode_package(PackageType::Data, &body[..MAX_BODY_LEN], &mut out).unwrap();
        assert_eq!(&out[1..5], &[4, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn needs_more_until_complete() {
        let wire = hex("04 000003 060000");
        for cut in 0..wire.len() {
            assert_eq!(decode_package(&wire[..cut], 16), Ok(None), "prefix {cut}");
        }
        let (p, n) = decode_package(&wire, 16).unwrap().unwrap();
        assert_eq!((p.body, n), (&[6, 0, 0][..], 7));
    }

    #[test]
    fn empty_bodies_and_trailing_bytes() {
        let wire = hex("03 000000 04");
        let (p, n) = decode_package(&wire, 0).unwrap().unwrap();
        assert_eq!((p.kind, p.body, n), (PackageType::Heartbeat, &[][..], 4));
        // An empty DATA package is a valid *package*; the message layer rejects it.
        let empty_data = hex("04 000000");
        let (p, _) = decode_package(&empty_data, 0).unwrap().unwrap();
        assert_eq!((p.kind, p.body), (PackageType::Data, &[][..]));
    }

    #[test]
    fn invalid_type_is_rejected_at_the_first_byte() {
        for t in [0u8, 6, 9, 0x47 /* 'G' */, 0xff] {
            assert_eq!(decode_package(&[t], 16), Err(PackageError::InvalidType(t)));
            assert_eq!(
                decode_package(&[t, 0, 0, 0], 16),
                Err(PackageError::InvalidType(t))
            );
        }
        // The observed `09 00 00 00` that pinus closes on.
        assert_eq!(
            decode_package(&hex("09 000000"), 16),
            Err(PackageError::InvalidType(9))
        );
    }

    #[test]
    fn oversize_header_is_rejected_before_the_body_arrives() {
        // Just the header announcing 16 MiB − 1: rejected at once, nothing to wait for.
        let header = hex("04 ffffff");
        assert_eq!(
            decode_package(&header, 64 * 1024),
            Err(PackageError::TooLarge {
                len: MAX_BODY_LEN,
                max: 64 * 1024
            })
        );
        // Exactly at the limit is fine (and waits for the body).
        assert_eq!(decode_package(&hex("04 000010"), 16), Ok(None));
        assert_eq!(
            decode_package(&hex("04 000011"), 16),
            Err(PackageError::TooLarge { len: 17, max: 16 })
        );
        // The decoder struct never buffers beyond its limit either.
        let mut d = PackageDecoder::new(16);
        assert_eq!(d.push(&hex("04 000011")), 4);
        assert_eq!(
            d.next_package(),
            Err(PackageError::TooLarge { len: 17, max: 16 })
        );
        assert_eq!(
            d.next_package(),
            Err(PackageError::TooLarge { len: 17, max: 16 })
        );
        // A limit above 2^24 − 1 is capped.
        assert_eq!(PackageDecoder::new(usize::MAX).max_body(), MAX_BODY_LEN);
    }

    #[test]
    fn decoder_push_is_bounded() {
        let mut d = PackageDecoder::new(4);
        let stream = hex("04 000004 01020304 03 000000");
        // Only one maximal package fits.
        assert_eq!(d.push(&stream), 8);
        assert_eq!(d.buffer_limit(), 8);
        let p = d.next_package().unwrap().unwrap();
        assert_eq!(p.body, &[1, 2, 3, 4]);
        assert_eq!(d.next_package(), Ok(None));
        assert_eq!(d.push(&stream[8..]), 4);
        assert_eq!(
            d.next_package().unwrap().unwrap().kind,
            PackageType::Heartbeat
        );
        assert_eq!(d.pending(), 0);
    }

    fn stream_of_captures() -> Vec<u8> {
        let mut s: Vec<u8> = captures().concat();
        // Plus a few odd-sized bodies and a trailing partial header.
        encode_package(PackageType::Data, &[0x55; 300], &mut s).unwrap();
        encode_package(PackageType::Handshake, &[], &mut s).unwrap();
        s.extend_from_slice(&hex("04 00"));
        s
    }

    #[test]
    fn arbitrary_chunking_yields_the_same_packages() {
        let stream = stream_of_captures();
        let reference = decode_all(&stream, 1024);
        assert_eq!(reference.0.len(), captures().len() + 2);
        assert_eq!((reference.1, reference.2), (2, None));

        // One byte at a time.
        assert_eq!(decode_chunked(&stream, 1024, &mut || 1), reference);
        // Fixed sizes around the header length.
        for size in [2, 3, 4, 5, 7, 64, stream.len()] {
            assert_eq!(
                decode_chunked(&stream, 1024, &mut || size),
                reference,
                "size {size}"
            );
        }
        // Random splits.
        let mut rng = XorShift::new(0x9e37_79b9_7f4a_7c15);
        for _ in 0..500 {
            let got = decode_chunked(&stream, 1024, &mut || rng.index(40) + 1);
            assert_eq!(got, reference);
        }
    }

    #[test]
    fn chunking_reports_the_same_error() {
        let mut stream = captures().concat();
        stream.extend_from_slice(&hex("07 000000 03 000000"));
        let reference = decode_all(&stream, 1024);
        assert_eq!(reference.2, Some(PackageError::InvalidType(7)));
        let mut rng = XorShift::new(42);
        for _ in 0..200 {
            let got = decode_chunked(&stream, 1024, &mut || rng.index(16) + 1);
            assert_eq!((got.0, got.2), (reference.0.clone(), reference.2));
        }
    }

    #[test]
    fn error_texts_are_lowercase() {
        assert_eq!(
            PackageError::InvalidType(9).to_string(),
            "invalid package type 9"
        );
        assert_eq!(
            PackageError::TooLarge { len: 17, max: 16 }.to_string(),
            "package body of 17 bytes exceeds the limit of 16"
        );
        assert_eq!(
            PackageError::InvalidType(0).as_str(),
            "invalid package type"
        );
    }
}
