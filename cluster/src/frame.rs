//! The cluster frame codec: one Redis `PUBLISH` payload, pure functions, no I/O.
//!
//! Layout (little-endian throughout):
//!
//! ```text
//! header:
//!   u8  version = 1
//!   u8  kind: 1 = Data, 2 = Ack
//!   u16 flags            bit0 RETRANSMIT; other bits reserved, ignored by receivers
//!   u32 cluster          tag of the key prefix (cluster_tag); receivers drop other tags
//!   u64 origin_epoch
//!   u64 dest_epoch       the receiver's epoch this frame is meant for
//!   u64 seq              Data: this frame's sequence number; Ack: cumulative "acked through"
//!   u64 floor            Data: lowest seq the sender may still (re)send; Ack: 0
//!   u8  origin_len, origin bytes (UTF-8 node id, 1..=255 bytes)
//! Data body: u16 n, then n requests: u32 req, u8 op, op body
//! Ack body:  u16 n, then n replies:  u32 req, u8 status, u32 len, body bytes
//! ```
//!
//! [`decode`] borrows from its input and never panics; every count it reads is checked against
//! the bytes left before any `Vec` is sized, so its allocation is bounded by the input length.
//! The encoders ([`DataWriter`], [`encode_ack`], [`encode`]) produce the one canonical
//! encoding `decode` accepts: `encode(&decode(b)?)` gives back exactly `b`.

use std::fmt;

/// The only frame version this codec reads and writes.
pub const VERSION: u8 = 1;

/// Bytes of a frame before the origin's bytes: the fixed header fields (40 bytes) and the
/// origin length byte. A header is `HEADER_FIXED + origin.len()` bytes; the body follows.
pub const HEADER_FIXED: usize = 41;

/// Flag bit 0: this Data frame was sent before (a go-back-N retransmission or a resend
/// after a reconnect). Informational: receivers dedup by sequence number either way.
pub const FLAG_RETRANSMIT: u16 = 1;

/// Longest origin node id, in bytes (its length is one byte on the wire).
pub const MAX_ORIGIN: usize = 255;

// Field offsets in the fixed header.
const AT_KIND: usize = 1;
const AT_FLAGS: usize = 2;
const AT_SEQ: usize = 24;
const AT_FLOOR: usize = 32;

/// Smallest encoded request (`u32 req, u8 op` and the shortest op body, GetUid's `u16 len`).
const MIN_REQUEST: usize = 4 + 1 + 2;
/// Smallest encoded reply (`u32 req, u8 status, u32 len`).
const MIN_REPLY: usize = 4 + 1 + 4;

/// Frame kind (header byte 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Requests from the origin to the destination, sequenced and acknowledged.
    Data = 1,
    /// A cumulative acknowledgement, carrying the replies of executed requests.
    Ack = 2,
}

impl Kind {
    fn from_u8(b: u8) -> Result<Kind, FrameError> {
        match b {
            1 => Ok(Kind::Data),
            2 => Ok(Kind::Ack),
            other => Err(FrameError::Kind(other)),
        }
    }
}

/// Outcome of one request, in its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Done; the body is the op's result (empty, or JSON text, or a count, per op).
    Ok = 0,
    /// The session service refused with one of pomelo's error texts (the body).
    PomeloError = 1,
    /// No session with that sid (or uid) on the destination.
    NoSession = 2,
    /// Not executed (for example a queue was full); the body says why.
    Refused = 3,
    /// The request could not be understood (bad JSON, …).
    Malformed = 4,
}

impl Status {
    /// The status for a wire byte, if it is one.
    pub fn from_u8(b: u8) -> Option<Status> {
        Status::decode(b).ok()
    }

    fn decode(b: u8) -> Result<Status, FrameError> {
        match b {
            0 => Ok(Status::Ok),
            1 => Ok(Status::PomeloError),
            2 => Ok(Status::NoSession),
            3 => Ok(Status::Refused),
            4 => Ok(Status::Malformed),
            other => Err(FrameError::Status(other)),
        }
    }
}

/// A decoded frame header; `origin` borrows from the decoded buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// Data or Ack.
    pub kind: Kind,
    /// Flag bits as received (unknown bits are kept, not interpreted).
    pub flags: u16,
    /// The cluster tag ([`cluster_tag`] of the key prefix).
    pub cluster: u32,
    /// Epoch of the sending process.
    pub origin_epoch: u64,
    /// Epoch of the receiving process this frame is meant for.
    pub dest_epoch: u64,
    /// Data: this frame's sequence number (>= 1 when sent by [`crate::reliable::Outbound`]).
    /// Ack: acknowledged through this sequence number (0 = nothing yet).
    pub seq: u64,
    /// Data: lowest sequence number the sender may still send; the receiver may skip to it.
    /// Ack: written as 0 and not interpreted.
    pub floor: u64,
    /// The sender's node id (1..=255 bytes of UTF-8).
    pub origin: &'a str,
}

/// One operation on the destination's sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op<'a> {
    /// Op 1: write `package` (a pre-encoded pomelo package) to every session of each uid.
    PushUids {
        /// Target uids.
        uids: Vec<&'a str>,
        /// The package bytes, written as they are.
        package: &'a [u8],
    },
    /// Op 2: write `package` to each session id.
    PushSids {
        /// Target session ids.
        sids: Vec<u64>,
        /// The package bytes.
        package: &'a [u8],
    },
    /// Op 3: write `package` to every session (only bound ones if `bound_only`).
    Broadcast {
        /// Skip sessions not bound to a uid.
        bound_only: bool,
        /// The package bytes.
        package: &'a [u8],
    },
    /// Op 4: kick every session of `uid` whose bind generation is below `below_gen`.
    KickUid {
        /// The uid.
        uid: &'a str,
        /// Kick reason; `None` closes without a KICK package.
        reason: Option<&'a str>,
        /// Only sessions bound before this generation are kicked (`u64::MAX`: all).
        below_gen: u64,
    },
    /// Op 5: kick one session.
    KickSid {
        /// The session id.
        sid: u64,
        /// Kick reason; `None` closes without a KICK package.
        reason: Option<&'a str>,
    },
    /// Op 6: bind session `sid` to `uid`.
    Bind {
        /// The session id.
        sid: u64,
        /// The uid.
        uid: &'a str,
    },
    /// Op 7: unbind session `sid` from `uid`.
    Unbind {
        /// The session id.
        sid: u64,
        /// The uid.
        uid: &'a str,
    },
    /// Op 8: set one session setting; `value` is JSON text.
    Import {
        /// The session id.
        sid: u64,
        /// Setting name.
        key: &'a str,
        /// JSON text of the value (not validated by the codec).
        value: &'a [u8],
    },
    /// Op 9: replace the session's settings; `settings` is the JSON text of an object.
    ImportAll {
        /// The session id.
        sid: u64,
        /// JSON object text (not validated by the codec).
        settings: &'a [u8],
    },
    /// Op 10: snapshot of one session.
    GetSid {
        /// The session id.
        sid: u64,
    },
    /// Op 11: snapshots of every session of a uid.
    GetUid {
        /// The uid.
        uid: &'a str,
    },
}

impl Op<'_> {
    /// The op's code on the wire (1..=11).
    pub fn code(&self) -> u8 {
        match self {
            Op::PushUids { .. } => 1,
            Op::PushSids { .. } => 2,
            Op::Broadcast { .. } => 3,
            Op::KickUid { .. } => 4,
            Op::KickSid { .. } => 5,
            Op::Bind { .. } => 6,
            Op::Unbind { .. } => 7,
            Op::Import { .. } => 8,
            Op::ImportAll { .. } => 9,
            Op::GetSid { .. } => 10,
            Op::GetUid { .. } => 11,
        }
    }
}

/// One request of a Data frame: the origin's request id and the op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// Request id, chosen by the origin; echoed in the reply.
    pub req: u32,
    /// The operation.
    pub op: Op<'a>,
}

/// One reply of an Ack frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    /// The request id this answers.
    pub req: u32,
    /// Outcome.
    pub status: Status,
    /// Result or error text, per op and status.
    pub body: &'a [u8],
}

/// A frame's body, by kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    /// The requests of a Data frame, in order.
    Data(Vec<Request<'a>>),
    /// The replies of an Ack frame, in order.
    Ack(Vec<Reply<'a>>),
}

/// A decoded frame, borrowing from the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The header.
    pub header: Header<'a>,
    /// The body (its variant always matches `header.kind`).
    pub body: Body<'a>,
}

/// Why a payload could not be decoded or a frame encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The payload ends inside a field.
    Truncated,
    /// Unknown version byte.
    Version(u8),
    /// Unknown kind byte.
    Kind(u8),
    /// Unknown op code.
    Op(u8),
    /// Unknown status byte.
    Status(u8),
    /// A string field is not UTF-8.
    Utf8,
    /// A payload, frame or field is longer than allowed (`len` bytes, at most `max`).
    TooLarge {
        /// The length found or needed.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// This many bytes follow the body.
    Trailing(usize),
    /// The origin node id is empty or longer than 255 bytes.
    BadOrigin,
    /// A claimed element count cannot fit in the bytes left (decode), or exceeds what its
    /// count field can hold (encode).
    Count,
    /// A boolean byte (`bound_only`, a reason's presence) is neither 0 nor 1.
    Bool(u8),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Truncated => f.write_str("cluster frame truncated"),
            FrameError::Version(v) => write!(f, "cluster frame version {v} (expected {VERSION})"),
            FrameError::Kind(k) => write!(f, "cluster frame: unknown kind {k}"),
            FrameError::Op(o) => write!(f, "cluster frame: unknown op {o}"),
            FrameError::Status(s) => write!(f, "cluster frame: unknown status {s}"),
            FrameError::Utf8 => f.write_str("cluster frame: string field is not UTF-8"),
            FrameError::TooLarge { len, max } => {
                write!(f, "cluster frame: {len} bytes exceed the limit of {max}")
            }
            FrameError::Trailing(n) => write!(f, "cluster frame: {n} trailing bytes"),
            FrameError::BadOrigin => f.write_str("cluster frame: origin must be 1..=255 bytes"),
            FrameError::Count => f.write_str("cluster frame: element count out of range"),
            FrameError::Bool(b) => write!(f, "cluster frame: boolean byte {b} is not 0 or 1"),
        }
    }
}

impl std::error::Error for FrameError {}

// ---------------------------------------------------------------------------------------------
// Decoding

/// A cursor over the payload; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        let end = self.pos.checked_add(n).ok_or(FrameError::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(FrameError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, FrameError> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        self.array().map(u64::from_le_bytes)
    }

    fn bool(&mut self) -> Result<bool, FrameError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(FrameError::Bool(other)),
        }
    }

    fn str(&mut self, len: usize) -> Result<&'a str, FrameError> {
        std::str::from_utf8(self.take(len)?).map_err(|_| FrameError::Utf8)
    }

    /// A `u16`-length-prefixed string.
    fn str16(&mut self) -> Result<&'a str, FrameError> {
        let len = self.u16()?;
        self.str(usize::from(len))
    }

    /// A `u32`-length-prefixed byte string.
    fn bytes32(&mut self) -> Result<&'a [u8], FrameError> {
        let len = self.u32()?;
        self.take(usize::try_from(len).map_err(|_| FrameError::Truncated)?)
    }

    /// A reason: `u8` present, then a `u16`-length string if present.
    fn reason(&mut self) -> Result<Option<&'a str>, FrameError> {
        if self.bool()? {
            self.str16().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Checks that `count` elements of at least `min_each` bytes fit in what is left, so a
    /// `Vec::with_capacity(count)` is bounded by the input length.
    fn check_count(&self, count: usize, min_each: usize) -> Result<(), FrameError> {
        if count.saturating_mul(min_each) > self.remaining() {
            Err(FrameError::Count)
        } else {
            Ok(())
        }
    }

    fn count32(&mut self, min_each: usize) -> Result<usize, FrameError> {
        let n = usize::try_from(self.u32()?).map_err(|_| FrameError::Count)?;
        self.check_count(n, min_each)?;
        Ok(n)
    }

    fn header(&mut self) -> Result<Header<'a>, FrameError> {
        let version = self.u8()?;
        if version != VERSION {
            return Err(FrameError::Version(version));
        }
        let kind = Kind::from_u8(self.u8()?)?;
        let flags = self.u16()?;
        let cluster = self.u32()?;
        let origin_epoch = self.u64()?;
        let dest_epoch = self.u64()?;
        let seq = self.u64()?;
        let floor = self.u64()?;
        let origin_len = self.u8()?;
        if origin_len == 0 {
            return Err(FrameError::BadOrigin);
        }
        let origin = self.str(usize::from(origin_len))?;
        Ok(Header {
            kind,
            flags,
            cluster,
            origin_epoch,
            dest_epoch,
            seq,
            floor,
            origin,
        })
    }

    fn op(&mut self) -> Result<Op<'a>, FrameError> {
        let code = self.u8()?;
        Ok(match code {
            1 => {
                let n = self.count32(2)?;
                let mut uids = Vec::with_capacity(n);
                for _ in 0..n {
                    uids.push(self.str16()?);
                }
                Op::PushUids {
                    uids,
                    package: self.bytes32()?,
                }
            }
            2 => {
                let n = self.count32(8)?;
                let mut sids = Vec::with_capacity(n);
                for _ in 0..n {
                    sids.push(self.u64()?);
                }
                Op::PushSids {
                    sids,
                    package: self.bytes32()?,
                }
            }
            3 => Op::Broadcast {
                bound_only: self.bool()?,
                package: self.bytes32()?,
            },
            4 => Op::KickUid {
                uid: self.str16()?,
                reason: self.reason()?,
                below_gen: self.u64()?,
            },
            5 => Op::KickSid {
                sid: self.u64()?,
                reason: self.reason()?,
            },
            6 => Op::Bind {
                sid: self.u64()?,
                uid: self.str16()?,
            },
            7 => Op::Unbind {
                sid: self.u64()?,
                uid: self.str16()?,
            },
            8 => Op::Import {
                sid: self.u64()?,
                key: self.str16()?,
                value: self.bytes32()?,
            },
            9 => Op::ImportAll {
                sid: self.u64()?,
                settings: self.bytes32()?,
            },
            10 => Op::GetSid { sid: self.u64()? },
            11 => Op::GetUid { uid: self.str16()? },
            other => return Err(FrameError::Op(other)),
        })
    }
}

/// Decodes one payload. `max` bounds the whole payload and is checked first
/// (`TooLarge { len, max }`). Never panics; allocation is bounded by the input length (a
/// claimed count larger than the bytes left could hold is `Count`, before any `Vec` is sized).
/// Unknown version, kind, op or status bytes are errors; unknown flag bits are kept in
/// `header.flags` and otherwise ignored; bytes after the body are `Trailing(n)`.
pub fn decode(buf: &[u8], max: usize) -> Result<Decoded<'_>, FrameError> {
    if buf.len() > max {
        return Err(FrameError::TooLarge {
            len: buf.len(),
            max,
        });
    }
    let mut r = Reader { buf, pos: 0 };
    let header = r.header()?;
    let n = usize::from(r.u16()?);
    let body = match header.kind {
        Kind::Data => {
            r.check_count(n, MIN_REQUEST)?;
            let mut requests = Vec::with_capacity(n);
            for _ in 0..n {
                let req = r.u32()?;
                let op = r.op()?;
                requests.push(Request { req, op });
            }
            Body::Data(requests)
        }
        Kind::Ack => {
            r.check_count(n, MIN_REPLY)?;
            let mut replies = Vec::with_capacity(n);
            for _ in 0..n {
                let req = r.u32()?;
                let status = Status::decode(r.u8()?)?;
                let body = r.bytes32()?;
                replies.push(Reply { req, status, body });
            }
            Body::Ack(replies)
        }
    };
    match r.remaining() {
        0 => Ok(Decoded { header, body }),
        n => Err(FrameError::Trailing(n)),
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Checks a node id for use as a frame origin: 1..=255 bytes. (Node ids are `&str`, so UTF-8.)
pub fn check_origin(origin: &str) -> Result<(), FrameError> {
    if origin.is_empty() || origin.len() > MAX_ORIGIN {
        Err(FrameError::BadOrigin)
    } else {
        Ok(())
    }
}

fn put_header(
    buf: &mut Vec<u8>,
    kind: Kind,
    cluster: u32,
    origin: &str,
    origin_epoch: u64,
    dest_epoch: u64,
    seq: u64,
) {
    buf.push(VERSION);
    buf.push(kind as u8);
    buf.extend_from_slice(&0u16.to_le_bytes());
    buf.extend_from_slice(&cluster.to_le_bytes());
    buf.extend_from_slice(&origin_epoch.to_le_bytes());
    buf.extend_from_slice(&dest_epoch.to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&0u64.to_le_bytes());
    // Callers pass an origin of at most 255 bytes.
    buf.push(origin.len() as u8);
    buf.extend_from_slice(origin.as_bytes());
}

/// Encoded size of a `u16`-length-prefixed string, or `TooLarge` if it does not fit.
fn len_str16(s: &str) -> Result<usize, FrameError> {
    if s.len() > usize::from(u16::MAX) {
        return Err(FrameError::TooLarge {
            len: s.len(),
            max: usize::from(u16::MAX),
        });
    }
    Ok(2 + s.len())
}

/// Encoded size of a `u32`-length-prefixed byte string, or `TooLarge` if it does not fit.
fn len_bytes32(b: &[u8]) -> Result<usize, FrameError> {
    if u32::try_from(b.len()).is_err() {
        return Err(FrameError::TooLarge {
            len: b.len(),
            max: u32::MAX as usize,
        });
    }
    Ok(4 + b.len())
}

fn len_reason(reason: Option<&str>) -> Result<usize, FrameError> {
    match reason {
        None => Ok(1),
        Some(r) => Ok(1 + len_str16(r)?),
    }
}

/// Encoded size of a request carrying `op` (request id and op code included), checking that
/// every length and count fits its field.
fn request_len(op: &Op<'_>) -> Result<usize, FrameError> {
    let body = match op {
        Op::PushUids { uids, package } => {
            if u32::try_from(uids.len()).is_err() {
                return Err(FrameError::Count);
            }
            let mut n = 4 + len_bytes32(package)?;
            for uid in uids {
                n += len_str16(uid)?;
            }
            n
        }
        Op::PushSids { sids, package } => {
            if u32::try_from(sids.len()).is_err() {
                return Err(FrameError::Count);
            }
            4 + 8 * sids.len() + len_bytes32(package)?
        }
        Op::Broadcast { package, .. } => 1 + len_bytes32(package)?,
        Op::KickUid { uid, reason, .. } => len_str16(uid)? + len_reason(*reason)? + 8,
        Op::KickSid { reason, .. } => 8 + len_reason(*reason)?,
        Op::Bind { uid, .. } | Op::Unbind { uid, .. } => 8 + len_str16(uid)?,
        Op::Import { key, value, .. } => 8 + len_str16(key)? + len_bytes32(value)?,
        Op::ImportAll { settings, .. } => 8 + len_bytes32(settings)?,
        Op::GetSid { .. } => 8,
        Op::GetUid { uid } => len_str16(uid)?,
    };
    Ok(4 + 1 + body)
}

// Writers: only called after request_len / the caller checked the lengths fit.
fn put_str16(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u16).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn put_bytes32(buf: &mut Vec<u8>, b: &[u8]) {
    buf.extend_from_slice(&(b.len() as u32).to_le_bytes());
    buf.extend_from_slice(b);
}

fn put_reason(buf: &mut Vec<u8>, reason: Option<&str>) {
    match reason {
        None => buf.push(0),
        Some(r) => {
            buf.push(1);
            put_str16(buf, r);
        }
    }
}

fn put_request(buf: &mut Vec<u8>, req: u32, op: &Op<'_>) {
    buf.extend_from_slice(&req.to_le_bytes());
    buf.push(op.code());
    match op {
        Op::PushUids { uids, package } => {
            buf.extend_from_slice(&(uids.len() as u32).to_le_bytes());
            for uid in uids {
                put_str16(buf, uid);
            }
            put_bytes32(buf, package);
        }
        Op::PushSids { sids, package } => {
            buf.extend_from_slice(&(sids.len() as u32).to_le_bytes());
            for sid in sids {
                buf.extend_from_slice(&sid.to_le_bytes());
            }
            put_bytes32(buf, package);
        }
        Op::Broadcast {
            bound_only,
            package,
        } => {
            buf.push(u8::from(*bound_only));
            put_bytes32(buf, package);
        }
        Op::KickUid {
            uid,
            reason,
            below_gen,
        } => {
            put_str16(buf, uid);
            put_reason(buf, *reason);
            buf.extend_from_slice(&below_gen.to_le_bytes());
        }
        Op::KickSid { sid, reason } => {
            buf.extend_from_slice(&sid.to_le_bytes());
            put_reason(buf, *reason);
        }
        Op::Bind { sid, uid } | Op::Unbind { sid, uid } => {
            buf.extend_from_slice(&sid.to_le_bytes());
            put_str16(buf, uid);
        }
        Op::Import { sid, key, value } => {
            buf.extend_from_slice(&sid.to_le_bytes());
            put_str16(buf, key);
            put_bytes32(buf, value);
        }
        Op::ImportAll { sid, settings } => {
            buf.extend_from_slice(&sid.to_le_bytes());
            put_bytes32(buf, settings);
        }
        Op::GetSid { sid } => buf.extend_from_slice(&sid.to_le_bytes()),
        Op::GetUid { uid } => put_str16(buf, uid),
    }
}

/// Builder for a Data frame: the header (seq 0, floor 0, flags 0) and an empty request list
/// are written at [`DataWriter::new`]; requests are appended with [`DataWriter::push`] as long
/// as the frame stays within `max` bytes. Seq, floor and flags are patched into the finished
/// bytes later ([`set_seq`], [`set_floor`], [`set_flags`]; [`crate::reliable::Outbound`] does).
#[derive(Clone, Debug)]
pub struct DataWriter {
    buf: Vec<u8>,
    count: u16,
    count_at: usize,
    max: usize,
}

impl DataWriter {
    /// Starts a Data frame from `origin` (incarnation `origin_epoch`) to the destination
    /// incarnation `dest_epoch`, in cluster `cluster`, of at most `max` bytes in all.
    /// Errors: `BadOrigin` unless `origin` is 1..=255 bytes; `TooLarge` if even the empty
    /// frame exceeds `max`.
    pub fn new(
        cluster: u32,
        origin: &str,
        origin_epoch: u64,
        dest_epoch: u64,
        max: usize,
    ) -> Result<DataWriter, FrameError> {
        check_origin(origin)?;
        let count_at = HEADER_FIXED + origin.len();
        let empty = count_at + 2;
        if empty > max {
            return Err(FrameError::TooLarge { len: empty, max });
        }
        let mut buf = Vec::with_capacity(empty.max(256).min(max));
        put_header(
            &mut buf,
            Kind::Data,
            cluster,
            origin,
            origin_epoch,
            dest_epoch,
            0,
        );
        buf.extend_from_slice(&0u16.to_le_bytes());
        Ok(DataWriter {
            buf,
            count: 0,
            count_at,
            max,
        })
    }

    /// Appends a request. Errors leave the writer unchanged, so the caller can finish this
    /// frame and start a new one: `TooLarge { len, max }` if the frame would exceed its `max`
    /// (`len` is the size it would have had) or a field exceeds its length prefix; `Count` if
    /// the frame already holds 65535 requests or a list exceeds `u32::MAX` elements.
    pub fn push(&mut self, req: u32, op: &Op<'_>) -> Result<(), FrameError> {
        if self.count == u16::MAX {
            return Err(FrameError::Count);
        }
        let len = self.buf.len().saturating_add(request_len(op)?);
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        put_request(&mut self.buf, req, op);
        self.count += 1;
        Ok(())
    }

    /// Appends a request whose operation was encoded by [`encode_op`] (the sender encodes an
    /// operation once and then decides which frame it joins). Errors as [`DataWriter::push`];
    /// `encoded` is trusted to come from `encode_op`.
    pub fn push_encoded(&mut self, req: u32, encoded: &[u8]) -> Result<(), FrameError> {
        if self.count == u16::MAX {
            return Err(FrameError::Count);
        }
        let len = self.buf.len().saturating_add(4 + encoded.len());
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        self.buf.extend_from_slice(&req.to_le_bytes());
        self.buf.extend_from_slice(encoded);
        self.count += 1;
        Ok(())
    }

    /// Encoded length so far (header and requests).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True while no request has been pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Number of requests pushed.
    pub fn count(&self) -> usize {
        usize::from(self.count)
    }

    /// The encoded frame (seq 0, floor 0, flags 0 until patched).
    pub fn finish(mut self) -> Vec<u8> {
        let at = self.count_at;
        self.buf[at..at + 2].copy_from_slice(&self.count.to_le_bytes());
        self.buf
    }
}

/// True if `buf` starts like a frame of this version (version byte, known kind, and long
/// enough for the fixed header), so its fixed fields can be patched.
fn patchable(buf: &[u8]) -> bool {
    buf.len() >= HEADER_FIXED && buf[0] == VERSION && Kind::from_u8(buf[AT_KIND]).is_ok()
}

fn patch(buf: &mut [u8], at: usize, bytes: &[u8]) -> bool {
    if !patchable(buf) {
        return false;
    }
    buf[at..at + bytes.len()].copy_from_slice(bytes);
    true
}

/// Writes `seq` into an encoded frame in place. Returns false (and changes nothing) if `buf`
/// is shorter than the fixed header or does not start with this version and a known kind.
pub fn set_seq(buf: &mut [u8], seq: u64) -> bool {
    patch(buf, AT_SEQ, &seq.to_le_bytes())
}

/// Writes `floor` into an encoded frame in place; false (nothing changed) as for [`set_seq`].
pub fn set_floor(buf: &mut [u8], floor: u64) -> bool {
    patch(buf, AT_FLOOR, &floor.to_le_bytes())
}

/// Writes `flags` into an encoded frame in place; false (nothing changed) as for [`set_seq`].
pub fn set_flags(buf: &mut [u8], flags: u16) -> bool {
    patch(buf, AT_FLAGS, &flags.to_le_bytes())
}

/// Encoded size of an Ack frame with this origin and these replies (what [`encode_ack`]
/// returns the length of, for origins of 1..=255 bytes), so a caller can split replies
/// across frames under the receivers' size limit.
pub fn ack_len(origin: &str, replies: &[Reply<'_>]) -> usize {
    replies
        .iter()
        .fold(HEADER_FIXED + origin.len() + 2, |n, r| {
            n.saturating_add(MIN_REPLY + r.body.len())
        })
}

/// Encodes an Ack frame: flags 0, `seq` = `acked_through`, floor 0, then the replies.
///
/// The caller passes a valid origin (1..=255 bytes, see [`check_origin`]) and at most 65535
/// replies with bodies under 4 GiB. This function never panics: a longer origin is cut to its
/// longest prefix of at most 255 bytes on a character boundary, replies past the 65535th are
/// not written, and an empty origin gives a frame receivers reject (`BadOrigin`).
pub fn encode_ack(
    cluster: u32,
    origin: &str,
    origin_epoch: u64,
    dest_epoch: u64,
    acked_through: u64,
    replies: &[Reply<'_>],
) -> Vec<u8> {
    let mut cut = origin.len().min(MAX_ORIGIN);
    while !origin.is_char_boundary(cut) {
        cut -= 1;
    }
    let origin = &origin[..cut];
    let replies = &replies[..replies.len().min(usize::from(u16::MAX))];
    let mut buf = Vec::with_capacity(ack_len(origin, replies));
    put_header(
        &mut buf,
        Kind::Ack,
        cluster,
        origin,
        origin_epoch,
        dest_epoch,
        acked_through,
    );
    buf.extend_from_slice(&(replies.len() as u16).to_le_bytes());
    for reply in replies {
        buf.extend_from_slice(&reply.req.to_le_bytes());
        buf.push(reply.status as u8);
        // A body over 4 GiB cannot be a reply; it is cut rather than mis-framed.
        let body = &reply.body[..reply.body.len().min(u32::MAX as usize)];
        put_bytes32(&mut buf, body);
    }
    buf
}

/// Encodes a decoded frame back to bytes: Data through [`DataWriter`] (no size limit) with
/// seq, floor and flags patched, Ack through [`encode_ack`] with flags and floor patched.
/// For every `d` that [`decode`] returned from `b`, the result is exactly `b` (the encoding is
/// canonical); the fuzz target `cluster_frame` checks that.
pub fn encode(frame: &Decoded<'_>) -> Result<Vec<u8>, FrameError> {
    let h = &frame.header;
    let mut buf = match &frame.body {
        Body::Data(requests) => {
            let mut w = DataWriter::new(
                h.cluster,
                h.origin,
                h.origin_epoch,
                h.dest_epoch,
                usize::MAX,
            )?;
            for r in requests {
                w.push(r.req, &r.op)?;
            }
            let mut buf = w.finish();
            set_seq(&mut buf, h.seq);
            buf
        }
        Body::Ack(replies) => {
            check_origin(h.origin)?;
            if replies.len() > usize::from(u16::MAX) {
                return Err(FrameError::Count);
            }
            encode_ack(
                h.cluster,
                h.origin,
                h.origin_epoch,
                h.dest_epoch,
                h.seq,
                replies,
            )
        }
    };
    // The kind byte follows the body, not the header field, so the two cannot disagree.
    set_floor(&mut buf, h.floor);
    set_flags(&mut buf, h.flags);
    Ok(buf)
}

/// The tag for a key prefix: FNV-1a (32-bit) of the prefix bytes. Stable across processes,
/// platforms and versions, so every node configured with the same prefix computes the same tag.
pub fn cluster_tag(prefix: &str) -> u32 {
    prefix.bytes().fold(0x811c_9dc5u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// One operation as it appears in a request after the `req` field (`u8 op`, then its body),
/// for [`DataWriter::push_encoded`].
///
/// # Errors
///
/// `TooLarge` / `Count` if a field exceeds its length prefix.
pub fn encode_op(op: &Op<'_>) -> Result<Vec<u8>, FrameError> {
    let len = request_len(op)?;
    let mut buf = Vec::with_capacity(len);
    put_request(&mut buf, 0, op);
    buf.drain(..4);
    Ok(buf)
}

/// The body of a `Refused` reply from a restarted frontend to a *retransmitted* frame meant for
/// its previous incarnation: that incarnation may have executed it before it died, so the
/// sender reports `Unconfirmed` rather than "no session".
pub const RESTARTED_RETRANSMIT: &[u8] = b"restarted; retransmitted frame";

/// The fuzz target `cluster_frame`'s property, also run over the committed corpus by this
/// module's tests: decoding arbitrary bytes (1 MiB limit) never panics, and whatever decodes
/// re-encodes to the identical bytes. Panics (that is the fuzzer's signal) if the property fails.
/// Compiled for this crate's tests and with the feature `internals` (fuzz/ enables it).
#[cfg(any(test, feature = "internals"))]
#[doc(hidden)]
pub fn fuzz_cluster_frame(data: &[u8]) {
    if let Ok(frame) = decode(data, 1 << 20) {
        let again = encode(&frame).expect("a decoded frame re-encodes");
        assert_eq!(again, data, "re-encoding {frame:?} is not canonical");
        assert_eq!(decode(&again, 1 << 20).as_ref(), Ok(&frame));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use gatehouse::__private::XorShift as Rng;

    /// Random strings and byte strings for ops, owned so ops can borrow them.
    struct Pool {
        strs: Vec<String>,
        bytes: Vec<Vec<u8>>,
    }

    impl Pool {
        fn new(rng: &mut Rng) -> Pool {
            let alphabet = ["a", "Z", "9", "_", "é", "中", "🎮", ":", ""];
            let strs = (0..32)
                .map(|_| {
                    (0..rng.index(20))
                        .map(|_| alphabet[rng.index(alphabet.len())])
                        .collect()
                })
                .collect();
            let bytes = (0..32)
                .map(|_| (0..rng.index(300)).map(|_| rng.next_u64() as u8).collect())
                .collect();
            Pool { strs, bytes }
        }

        fn s(&self, rng: &mut Rng) -> &str {
            &self.strs[rng.index(self.strs.len())]
        }

        fn b(&self, rng: &mut Rng) -> &[u8] {
            &self.bytes[rng.index(self.bytes.len())]
        }
    }

    fn random_op<'a>(rng: &mut Rng, pool: &'a Pool, code: u8) -> Op<'a> {
        let reason = |rng: &mut Rng| {
            if rng.index(2) == 0 {
                None
            } else {
                Some(pool.s(rng))
            }
        };
        match code {
            1 => Op::PushUids {
                uids: (0..rng.index(5)).map(|_| pool.s(rng)).collect(),
                package: pool.b(rng),
            },
            2 => Op::PushSids {
                sids: (0..rng.index(5)).map(|_| rng.next_u64()).collect(),
                package: pool.b(rng),
            },
            3 => Op::Broadcast {
                bound_only: rng.index(2) == 1,
                package: pool.b(rng),
            },
            4 => Op::KickUid {
                uid: pool.s(rng),
                reason: reason(rng),
                below_gen: rng.next_u64(),
            },
            5 => Op::KickSid {
                sid: rng.next_u64(),
                reason: reason(rng),
            },
            6 => Op::Bind {
                sid: rng.next_u64(),
                uid: pool.s(rng),
            },
            7 => Op::Unbind {
                sid: rng.next_u64(),
                uid: pool.s(rng),
            },
            8 => Op::Import {
                sid: rng.next_u64(),
                key: pool.s(rng),
                value: pool.b(rng),
            },
            9 => Op::ImportAll {
                sid: rng.next_u64(),
                settings: pool.b(rng),
            },
            10 => Op::GetSid {
                sid: rng.next_u64(),
            },
            _ => Op::GetUid { uid: pool.s(rng) },
        }
    }

    fn status(i: usize) -> Status {
        [
            Status::Ok,
            Status::PomeloError,
            Status::NoSession,
            Status::Refused,
            Status::Malformed,
        ][i % 5]
    }

    /// A Data frame holding one request of every op, patched, for the error tests.
    fn sample_data() -> Vec<u8> {
        let mut rng = Rng::new(7);
        let pool = Pool::new(&mut rng);
        let mut w = DataWriter::new(0xfeed, "fe-a", 11, 22, 1 << 20).unwrap();
        for code in 1..=11 {
            w.push(u32::from(code) * 100, &random_op(&mut rng, &pool, code))
                .unwrap();
        }
        let mut buf = w.finish();
        assert!(set_seq(&mut buf, 5));
        assert!(set_floor(&mut buf, 3));
        buf
    }

    fn sample_ack() -> Vec<u8> {
        let replies: Vec<Reply<'_>> = (0..5)
            .map(|i| Reply {
                req: i as u32,
                status: status(i),
                body: b"text",
            })
            .collect();
        encode_ack(1, "be-1", 2, 3, 4, &replies)
    }

    #[test]
    fn every_op_and_status_round_trips() {
        let mut rng = Rng::new(0x1234_5678_9abc_def1);
        let pool = Pool::new(&mut rng);
        for round in 0..500 {
            let long = "n".repeat(255);
            let origins = ["a", "fe-1", "connector-é-🎮", long.as_str()];
            let origin = origins[rng.index(origins.len())];
            let (cluster, oe, de) = (rng.next_u64() as u32, rng.next_u64(), rng.next_u64());
            let mut w = DataWriter::new(cluster, origin, oe, de, 1 << 20).unwrap();
            let mut want = Vec::new();
            for _ in 0..rng.index(12) {
                // Every op appears in the first rounds; then random ones.
                let code = if round < 11 {
                    round as u8 + 1
                } else {
                    1 + rng.index(11) as u8
                };
                let req = Request {
                    req: rng.next_u64() as u32,
                    op: random_op(&mut rng, &pool, code),
                };
                w.push(req.req, &req.op).unwrap();
                want.push(req);
            }
            assert_eq!(w.count(), want.len());
            assert_eq!(w.is_empty(), want.is_empty());
            let len = w.len();
            let mut buf = w.finish();
            assert_eq!(buf.len(), len);
            let (seq, floor, flags) = (rng.next_u64(), rng.next_u64(), rng.next_u64() as u16);
            assert!(
                set_seq(&mut buf, seq) && set_floor(&mut buf, floor) && set_flags(&mut buf, flags)
            );
            let got = decode(&buf, buf.len()).unwrap();
            let header = Header {
                kind: Kind::Data,
                flags,
                cluster,
                origin_epoch: oe,
                dest_epoch: de,
                seq,
                floor,
                origin,
            };
            assert_eq!(
                got,
                Decoded {
                    header,
                    body: Body::Data(want)
                }
            );
            assert_eq!(encode(&got).unwrap(), buf);

            let replies: Vec<Reply<'_>> = (0..rng.index(8) + usize::from(round < 5))
                .enumerate()
                .map(|(i, _)| Reply {
                    req: rng.next_u64() as u32,
                    status: if round < 5 {
                        status(round + i)
                    } else {
                        status(rng.index(5))
                    },
                    body: pool.b(&mut rng),
                })
                .collect();
            let through = rng.next_u64();
            let ack = encode_ack(cluster, origin, oe, de, through, &replies);
            assert_eq!(ack.len(), ack_len(origin, &replies));
            let got = decode(&ack, 1 << 20).unwrap();
            let header = Header {
                kind: Kind::Ack,
                flags: 0,
                cluster,
                origin_epoch: oe,
                dest_epoch: de,
                seq: through,
                floor: 0,
                origin,
            };
            assert_eq!(
                got,
                Decoded {
                    header,
                    body: Body::Ack(replies)
                }
            );
            assert_eq!(encode(&got).unwrap(), ack);
        }
    }

    #[test]
    fn layout_is_as_documented() {
        let mut w = DataWriter::new(0x0403_0201, "ab", 0x11, 0x22, 1000).unwrap();
        w.push(7, &Op::GetUid { uid: "u" }).unwrap();
        let mut buf = w.finish();
        assert!(set_seq(&mut buf, 0x33) && set_floor(&mut buf, 0x44) && set_flags(&mut buf, 1));
        let mut want = vec![1, 1, 1, 0, 1, 2, 3, 4];
        for v in [0x11u64, 0x22, 0x33, 0x44] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        want.extend_from_slice(&[2, b'a', b'b', 1, 0, 7, 0, 0, 0, 11, 1, 0, b'u']);
        assert_eq!(buf, want);
        assert_eq!(HEADER_FIXED, want.iter().position(|&b| b == b'a').unwrap());
    }

    #[test]
    fn every_truncation_is_an_error() {
        for frame in [sample_data(), sample_ack()] {
            assert!(decode(&frame, frame.len()).is_ok());
            for cut in 0..frame.len() {
                let err = decode(&frame[..cut], frame.len()).unwrap_err();
                assert!(
                    matches!(err, FrameError::Truncated | FrameError::Count),
                    "cut at {cut}: {err:?}"
                );
            }
        }
    }

    #[test]
    fn every_single_byte_corruption_is_handled() {
        // Not a panic, and whatever still decodes re-encodes canonically.
        for frame in [sample_data(), sample_ack()] {
            for at in 0..frame.len() {
                for bit in 0..8 {
                    let mut bad = frame.clone();
                    bad[at] ^= 1 << bit;
                    fuzz_cluster_frame(&bad);
                }
            }
        }
    }

    #[test]
    fn huge_claimed_counts_and_lengths_are_rejected() {
        let header = {
            let w = DataWriter::new(0, "o", 0, 0, 100).unwrap();
            let mut b = w.finish();
            b.truncate(b.len() - 2);
            b
        };
        let frame = |tail: &[u8]| {
            let mut b = header.clone();
            b.extend_from_slice(tail);
            b
        };
        // 65535 requests claimed, 10 bytes present.
        let buf = frame(&[0xff, 0xff, 0, 0, 0, 0, 11, 0, 0, 0, 0, 0]);
        assert_eq!(decode(&buf, 1 << 20), Err(FrameError::Count));
        // One PushUids claiming 4G uids; one PushSids claiming 4G sids.
        for op in [1, 2] {
            let buf = frame(&[1, 0, 0, 0, 0, 0, op, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
            assert_eq!(decode(&buf, 1 << 20), Err(FrameError::Count));
        }
        // A 4 GiB package, a 64 KiB uid.
        let buf = frame(&[1, 0, 0, 0, 0, 0, 3, 0, 0xff, 0xff, 0xff, 0xff, 1, 2]);
        assert_eq!(decode(&buf, 1 << 20), Err(FrameError::Truncated));
        let buf = frame(&[1, 0, 0, 0, 0, 0, 11, 0xff, 0xff, b'x']);
        assert_eq!(decode(&buf, 1 << 20), Err(FrameError::Truncated));
        // An Ack claiming 65535 replies.
        let mut ack = encode_ack(0, "o", 0, 0, 0, &[]);
        let n = ack.len();
        ack[n - 2..].copy_from_slice(&[0xff, 0xff]);
        ack.extend_from_slice(&[0; 20]);
        assert_eq!(decode(&ack, 1 << 20), Err(FrameError::Count));
        // The size limit is checked before anything else.
        let big = vec![0u8; 101];
        assert_eq!(
            decode(&big, 100),
            Err(FrameError::TooLarge { len: 101, max: 100 })
        );
    }

    #[test]
    fn wrong_bytes_are_named() {
        let data = sample_data();
        let mut bad = data.clone();
        bad[0] = 2;
        assert_eq!(decode(&bad, 1 << 20), Err(FrameError::Version(2)));
        let mut bad = data.clone();
        bad[1] = 3;
        assert_eq!(decode(&bad, 1 << 20), Err(FrameError::Kind(3)));
        let mut bad = data.clone();
        bad[HEADER_FIXED - 1] = 0;
        assert_eq!(decode(&bad, 1 << 20), Err(FrameError::BadOrigin));
        let mut bad = data.clone();
        bad[HEADER_FIXED] = 0xff;
        assert_eq!(decode(&bad, 1 << 20), Err(FrameError::Utf8));
        // The first op code sits after the origin, the count and the request id.
        let op_at = HEADER_FIXED + 4 + 2 + 4;
        for code in [0u8, 12, 255] {
            let mut bad = data.clone();
            bad[op_at] = code;
            assert_eq!(decode(&bad, 1 << 20), Err(FrameError::Op(code)));
        }
        let ack = sample_ack();
        let status_at = HEADER_FIXED + 4 + 2 + 4;
        for code in [5u8, 255] {
            let mut bad = ack.clone();
            bad[status_at] = code;
            assert_eq!(decode(&bad, 1 << 20), Err(FrameError::Status(code)));
        }
        // Booleans: bound_only and a reason's presence.
        let mut w = DataWriter::new(0, "o", 0, 0, 1000).unwrap();
        w.push(
            1,
            &Op::Broadcast {
                bound_only: true,
                package: b"p",
            },
        )
        .unwrap();
        let mut bad = w.finish();
        bad[HEADER_FIXED + 1 + 2 + 4 + 1] = 2;
        assert_eq!(decode(&bad, 1 << 20), Err(FrameError::Bool(2)));
        let mut w = DataWriter::new(0, "o", 0, 0, 1000).unwrap();
        w.push(
            1,
            &Op::KickSid {
                sid: 1,
                reason: None,
            },
        )
        .unwrap();
        let mut bad = w.finish();
        bad[HEADER_FIXED + 1 + 2 + 4 + 1 + 8] = 7;
        assert_eq!(decode(&bad, 1 << 20), Err(FrameError::Bool(7)));
        // Unknown flag bits are kept, not refused.
        let mut flagged = data.clone();
        assert!(set_flags(&mut flagged, 0xfffe));
        assert_eq!(decode(&flagged, 1 << 20).unwrap().header.flags, 0xfffe);
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        for frame in [sample_data(), sample_ack()] {
            for extra in 1..4 {
                let mut long = frame.clone();
                long.extend(std::iter::repeat_n(0, extra));
                assert_eq!(decode(&long, 1 << 20), Err(FrameError::Trailing(extra)));
            }
        }
    }

    #[test]
    fn push_over_the_limit_leaves_the_writer_unchanged() {
        let mut w = DataWriter::new(9, "fe", 1, 2, 80).unwrap();
        let empty = w.len();
        assert_eq!(empty, HEADER_FIXED + 2 + 2);
        w.push(1, &Op::GetSid { sid: 5 }).unwrap();
        let one = w.len();
        assert_eq!(one, empty + 4 + 1 + 8);
        let before = w.clone().finish();
        let big = Op::Broadcast {
            bound_only: false,
            package: &[0; 40],
        };
        assert_eq!(
            w.push(2, &big),
            Err(FrameError::TooLarge {
                len: one + 4 + 1 + 1 + 4 + 40,
                max: 80
            })
        );
        // A field too long for its length prefix.
        let long = "x".repeat(70_000);
        assert!(matches!(
            w.push(3, &Op::GetUid { uid: &long }),
            Err(FrameError::TooLarge { len: 70_000, .. })
        ));
        assert_eq!((w.len(), w.count()), (one, 1));
        assert_eq!(w.clone().finish(), before);
        // What still fits goes in.
        w.push(4, &Op::GetSid { sid: 6 }).unwrap();
        let buf = w.finish();
        let got = decode(&buf, 80).unwrap();
        assert_eq!(
            got.body,
            Body::Data(vec![
                Request {
                    req: 1,
                    op: Op::GetSid { sid: 5 }
                },
                Request {
                    req: 4,
                    op: Op::GetSid { sid: 6 }
                },
            ])
        );
        // Origins and impossible limits.
        assert_eq!(
            DataWriter::new(0, "", 0, 0, 100).unwrap_err(),
            FrameError::BadOrigin
        );
        assert_eq!(
            DataWriter::new(0, &"x".repeat(256), 0, 0, 1000).unwrap_err(),
            FrameError::BadOrigin
        );
        assert!(DataWriter::new(0, &"x".repeat(255), 0, 0, 1000).is_ok());
        assert_eq!(
            DataWriter::new(0, "abc", 0, 0, 10).unwrap_err(),
            FrameError::TooLarge {
                len: HEADER_FIXED + 3 + 2,
                max: 10
            }
        );
    }

    #[test]
    fn a_frame_holds_at_most_65535_requests() {
        let mut w = DataWriter::new(0, "o", 0, 0, usize::MAX).unwrap();
        for i in 0..u32::from(u16::MAX) {
            w.push(i, &Op::GetUid { uid: "" }).unwrap();
        }
        assert_eq!(w.push(0, &Op::GetUid { uid: "" }), Err(FrameError::Count));
        let buf = w.finish();
        match decode(&buf, usize::MAX).unwrap().body {
            Body::Data(r) => assert_eq!(r.len(), 65535),
            Body::Ack(_) => panic!("kind"),
        }
    }

    #[test]
    fn patching_writes_only_its_field() {
        let frame = sample_data();
        let mut buf = frame.clone();
        assert!(set_seq(&mut buf, 0x0102_0304_0506_0708));
        assert_eq!(
            buf[AT_SEQ..AT_SEQ + 8],
            0x0102_0304_0506_0708u64.to_le_bytes()
        );
        assert!(set_floor(&mut buf, 99));
        assert!(set_flags(&mut buf, FLAG_RETRANSMIT));
        let got = decode(&buf, 1 << 20).unwrap();
        let was = decode(&frame, 1 << 20).unwrap();
        assert_eq!(
            (got.header.seq, got.header.floor, got.header.flags),
            (0x0102_0304_0506_0708, 99, FLAG_RETRANSMIT)
        );
        assert_eq!(got.body, was.body);
        assert_eq!(
            (got.header.origin, got.header.cluster),
            (was.header.origin, was.header.cluster)
        );
        // Not a frame: nothing written.
        for bad in [
            vec![1u8; HEADER_FIXED - 1],
            vec![2u8; 64],
            [1, 9, 0, 0].repeat(16),
        ] {
            let mut b = bad.clone();
            assert!(!set_seq(&mut b, 1) && !set_floor(&mut b, 1) && !set_flags(&mut b, 1));
            assert_eq!(b, bad);
        }
    }

    #[test]
    fn encode_ack_never_panics_on_bad_origins() {
        let long = "é".repeat(200); // 400 bytes; 255 is inside a character
        let ack = encode_ack(0, &long, 0, 0, 0, &[]);
        assert_eq!(
            decode(&ack, 1 << 20).unwrap().header.origin,
            "é".repeat(127)
        );
        let ack = encode_ack(0, "", 0, 0, 0, &[]);
        assert_eq!(decode(&ack, 1 << 20), Err(FrameError::BadOrigin));
    }

    #[test]
    fn cluster_tag_is_fnv1a_32() {
        // Reference values of FNV-1a 32.
        assert_eq!(cluster_tag(""), 0x811c_9dc5);
        assert_eq!(cluster_tag("a"), 0xe40c_292c);
        assert_eq!(cluster_tag("foobar"), 0xbf9c_f968);
        assert_ne!(cluster_tag("gh:"), cluster_tag("gh2:"));
    }

    #[test]
    fn errors_display() {
        let e = FrameError::TooLarge { len: 5, max: 4 };
        assert_eq!(
            e.to_string(),
            "cluster frame: 5 bytes exceed the limit of 4"
        );
        let _: &dyn std::error::Error = &e;
    }

    /// The fuzz target's property over its committed corpus (`fuzz/corpus/cluster_frame/`), on
    /// stable, and a deterministic random sweep of mutations of it.
    #[test]
    fn fuzz_corpus_replays() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/cluster_frame");
        let mut seeds = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            fuzz_cluster_frame(&data);
            seeds.push(data);
        }
        assert!(seeds.len() >= 2, "no corpus in {}", dir.display());
        assert!(
            seeds.iter().any(|s| decode(s, 1 << 20).is_ok()),
            "the corpus holds no valid frame"
        );
        let mut rng = Rng::new(0xc1u64 << 40 | 0x5eed);
        for _ in 0..3000 {
            let mut s = seeds[rng.index(seeds.len())].clone();
            for _ in 0..=rng.index(3) {
                if s.is_empty() {
                    break;
                }
                let at = rng.index(s.len());
                match rng.index(3) {
                    0 => s[at] ^= 1 << rng.index(8),
                    1 => s.truncate(at),
                    _ => s.insert(at, rng.next_u64() as u8),
                }
            }
            fuzz_cluster_frame(&s);
        }
    }
}
