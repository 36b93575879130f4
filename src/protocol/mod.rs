//! pomelo's wire protocol as pure functions over bytes (no I/O, no panics on any input).
//!
//! This is the byte layer of pomelo/pinus's `hybridconnector` (spec §5), the same over TCP
//! and WebSocket: the transport hands received bytes in, and gets packages, messages and
//! encoded replies out. Nothing here does I/O, keeps time or holds connection state.
//!
//! # Layers
//!
//! * **Packages** ([`decode_package`], [`encode_package`], [`PackageDecoder`]): a 4-byte
//!   header, type ([`PackageType`]) and 24-bit big-endian body length, then the body.
//!   Decoding is incremental and stateless (`Ok(None)` = need more bytes), and refuses an
//!   invalid type or a body over the caller's limit as soon as the header shows it, before any
//!   of the body is buffered.
//! * **Messages** ([`decode_message`], [`encode_message`], [`encode_push`],
//!   [`encode_response`]): the body of a DATA package. A flag byte, a LEB128 id for requests and
//!   responses (the full `u32` range), a route for requests, notifies and pushes (a name, or a
//!   [`Dictionary`] code), then the body.
//! * **Handshake** ([`process_handshake`]): the client's JSON, the check and hook, the reply
//!   (200 / 500 / 501).
//! * **Dictionary** ([`Dictionary`]): route compression, numbered and versioned as pinus does.
//! * **Control** ([`HEARTBEAT_PACKAGE`], [`HANDSHAKE_ACK_PACKAGE`], [`encode_kick`]).
//! * **Protobuf bodies** ([`protobuf`]): pinus's `useProtobuf` dialect, its proto files,
//!   handshake form and version.
//!
//! # Guarantees
//!
//! * **No panics on any input.** Every decoder returns an error instead; the fuzz entry
//!   points (`fuzzing.rs`, compiled only with the `internals` feature and driven by `fuzz/`)
//!   assert this and the round-trip properties, and the unit tests sweep them over the spec's
//!   captures and 20 000 deterministic random inputs.
//! * **No allocation on decode.** [`decode_package`] and [`decode_message`] return views
//!   borrowing the input. (Handshake parsing builds a `serde_json::Value`; it runs once per
//!   connection.)
//! * **One exact reservation per encode.** Encoders append to a caller's `Vec<u8>`, reserve
//!   exactly what they write, and leave it untouched on error; [`encode_push`] and
//!   [`encode_response`] produce a whole DATA package (header + message) in one go.
//! * **Canonical forms.** Every message that decodes re-encodes to exactly the same bytes.
//!
//! # Fixed from pinus (spec §7–8)
//!
//! * An empty DATA package is [`MessageError::Empty`] (pinus 1.7.4 crashes the connector).
//! * Package sizes are bounded by the caller (`max_body`), checked on the header alone (pinus
//!   allocates whatever the header announces).
//! * Message ids use all 32 bits (pinus's 32-bit shifts break ids ≥ 2^31); over-long, padded or
//!   overflowing ids are refused rather than mis-decoded.
//!
//! # Example: a request in, a response out
//!
//! ```
//! use gatehouse::protocol::{
//!     decode_message, decode_package, encode_response, MessageType, PackageType, Route,
//! };
//!
//! let received = b"\x04\x00\x00\x28\x00\x01\x1cconnector.entryHandler.entry{\"uid\":7}";
//! let (package, consumed) = decode_package(received, 64 * 1024).unwrap().unwrap();
//! assert_eq!((package.kind, consumed), (PackageType::Data, received.len()));
//!
//! let msg = decode_message(package.body).unwrap();
//! assert_eq!(msg.kind, MessageType::Request);
//! assert_eq!(msg.route, Route::Name("connector.entryHandler.entry"));
//!
//! let mut out = Vec::new();
//! encode_response(msg.id, br#"{"code":200}"#, &mut out).unwrap();
//! assert_eq!(&out[..6], b"\x04\x00\x00\x0e\x04\x01");
//! ```

mod control;
mod dictionary;
mod handshake;
mod json;
mod message;
mod package;
pub mod protobuf;
#[cfg(test)]
mod testutil;

#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod fuzzing;

pub use control::{encode_kick, encode_kick_body, HANDSHAKE_ACK_PACKAGE, HEARTBEAT_PACKAGE};
pub use dictionary::{Dictionary, DictionaryError, MAX_DICTIONARY_LEN};
pub use handshake::{
    process_handshake, ClientHandshake, HandshakeCode, HandshakeConfig, HandshakeError,
    HandshakeReply,
};
pub(crate) use message::encode_push_with;
pub use message::{
    decode_message, encode_data, encode_message, encode_push, encode_response, EncodeError,
    Message, MessageError, MessageType, Route, MAX_ID_LEN, MAX_ROUTE_LEN,
};
pub use package::{
    decode_package, encode_package, Package, PackageDecoder, PackageError, PackageType, HEADER_LEN,
    MAX_BODY_LEN,
};
pub use protobuf::Protos;
