//! [`Frame`]: pre-encoded, reference-counted outbound bytes.

use bytes::Bytes;
use std::fmt;

/// Bytes ready for the wire (for the pomelo connector: one whole package, header included),
/// shared by reference count.
///
/// A frame is encoded once and then handed to any number of sessions: every clone is an atomic
/// increment, never a copy or an allocation, so a push to a uid with three sessions, or a
/// broadcast to 100 000, copies no payload. The transport writes the bytes as they are.
///
/// # Examples
///
/// ```
/// use gatehouse::Frame;
///
/// let frame = Frame::new(vec![4, 0, 0, 1, 0x06]);
/// let copy = frame.clone(); // no allocation, no copy
/// assert_eq!(copy.as_bytes(), frame.as_bytes());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Frame(Bytes);

impl Frame {
    /// Takes ownership of an encoded buffer. Allocates one small shared header once, here, so
    /// that every later clone is allocation-free.
    pub fn new(bytes: Vec<u8>) -> Frame {
        Frame(Bytes::from_owner(bytes))
    }

    /// A frame over static bytes (no allocation at all).
    pub const fn from_static(bytes: &'static [u8]) -> Frame {
        Frame(Bytes::from_static(bytes))
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if the frame holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The frame as [`Bytes`] (shares the buffer).
    pub fn to_bytes(&self) -> Bytes {
        self.0.clone()
    }
}

impl From<Bytes> for Frame {
    /// Wraps existing `Bytes`. Note: `Bytes` made from a `Vec` allocate on their *first* clone;
    /// prefer [`Frame::new`] for frames that fan out.
    fn from(bytes: Bytes) -> Frame {
        Frame(bytes)
    }
}

impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Frame({} bytes)", self.0.len())
    }
}
