//! pomelo's protobuf dialect (pinus `useProtobuf`): the proto files, their handshake form and
//! version, and the codec for message bodies.
//!
//! pinus-protobuf is **not** Google protobuf. The schema is JSON (`serverProtos.json` for what
//! the server sends, `clientProtos.json` for what clients send), keyed by route:
//!
//! ```json
//! { "area.playerHandler.move": { "required uInt32 entityId": 1, "message Pos": {
//!       "required float x": 1, "required float y": 2 }, "repeated Pos path": 2 },
//!   "message Item": { "required string name": 1 } }
//! ```
//!
//! and the wire differs in a few places (all measured against pinus, see
//! `spec/pomelo-protobuf.md`):
//!
//! * `int32` is zigzag-encoded like `sInt32`; `uInt32` / `uInt64` are plain varints,
//!   `sInt64` zigzag, `bool` a varint 0 / 1 (pinus 1.7 types);
//! * repeated numbers and booleans are ONE key with the element's own wire type, a varint
//!   **element count**, then the elements; repeated strings and messages one key per element;
//! * decoders ignore the wire-type bits and read by the declared type.
//!
//! # What this module gives the server
//!
//! * [`Protos`]: both files loaded ([`Protos::load_dir`], [`Protos::from_json`]), with the
//!   handshake's `sys.protos` text ([`Protos::handshake_json`]) and the version
//!   ([`Protos::version`]) byte for byte as pinus computes them, and each route's schema
//!   ([`Protos::server`] for responses and pushes, [`Protos::client`] for requests).
//! * [`Message`]: one route's schema: [`encode`](Message::encode) a `serde_json::Value`
//!   (with [`encoded_len`](Message::encoded_len) first for one exact allocation) and
//!   [`decode`](Message::decode) bytes to a `Value`.
//!
//! The encoding and decoding rules, and where they are stricter than pinus (which writes
//! garbage or throws on the same inputs), are listed in the `encode` and `decode` module docs;
//! the parsed form and type resolution in `schema`. In short: no panics, work and memory
//! linear in the input, nesting at most [`MAX_DEPTH`], unknown tags and unresolvable types are
//! errors, `null` is an absent field (NaN in `float` / `double`), non-finite numbers decode to
//! `null`, strings decode lossily.
//!
//! # Example
//!
//! ```
//! use gatehouse::protocol::protobuf::Protos;
//! use serde_json::json;
//!
//! let server = r#"{"onMove": {"required uInt32 id": 1, "message Pos": {"required float x": 1,
//!     "required float y": 2}, "repeated Pos path": 2, "repeated int32 hp": 3}}"#;
//! let protos = Protos::from_json(server, "{}").unwrap();
//! let push = protos.server("onMove").unwrap();
//!
//! let value = json!({"id": 300, "path": [{"x": 0.5, "y": -2.0}], "hp": [-7, 1]});
//! let mut out = Vec::with_capacity(push.encoded_len(&value).unwrap());
//! push.encode(&value, &mut out).unwrap();
//! // Fields in the value's key order (a `serde_json::Map` sorts its keys): hp, id, path.
//! assert_eq!(
//!     out,
//!     [0x18, 0x02, 0x0d, 0x02, // hp: one key (tag 3, varint), 2 elements, zigzag -7 and 1
//!      0x08, 0xac, 0x02, // id: key (tag 1, varint), 300
//!      0x12, 0x0a, 0x0d, 0, 0, 0, 0x3f, 0x15, 0, 0, 0, 0xc0] // path[0]: 10 bytes {x, y}
//! );
//! assert_eq!(push.decode(&out).unwrap(), value);
//! assert!(protos.handshake_json().starts_with(r#"{"server":{"onMove":{"id":{"option":"required""#));
//! assert_eq!(protos.version().len(), 24);
//! ```

mod decode;
mod encode;
mod error;
mod schema;
mod source;
mod wire;

#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod fuzzing;

pub use error::{ProtoDecodeError, ProtoEncodeError, ProtosError};

use ahash::AHashMap;
use base64::Engine as _;
use md5::{Digest as _, Md5};
use schema::Arena;
use serde_json::Value;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// How deep messages may nest (the top message is level 1), encoding and decoding.
pub const MAX_DEPTH: usize = 32;

/// The server's and the clients' protos, loaded once at startup.
///
/// Cheap to share (`Arc<Protos>`); every lookup and the codec are `&self` and `Send + Sync`.
pub struct Protos {
    server: AHashMap<Box<str>, Message>,
    client: AHashMap<Box<str>, Message>,
    version: String,
    handshake: String,
}

/// One message schema (a route's, or a nested or root one): encodes and decodes its bodies.
///
/// A view into the messages of one proto file (shared, so it resolves nested and root types).
#[derive(Clone)]
pub struct Message {
    arena: Arc<Arena>,
    index: usize,
}

impl Protos {
    /// From the two source JSON texts (`serverProtos.json` and `clientProtos.json` content).
    ///
    /// # Errors
    ///
    /// [`ProtosError::Json`], [`ProtosError::NotAnObject`] or [`ProtosError::BadEntry`],
    /// naming `serverProtos.json` or `clientProtos.json`.
    pub fn from_json(server: &str, client: &str) -> Result<Protos, ProtosError> {
        Protos::build(("serverProtos.json", server), ("clientProtos.json", client))
    }

    /// Reads `dir/serverProtos.json` and `dir/clientProtos.json`. A missing file counts as
    /// `{}`, but not both; a leading UTF-8 byte-order mark is ignored (as Node's `require`
    /// ignores it).
    ///
    /// # Errors
    ///
    /// [`ProtosError::NoFiles`] if neither file exists, [`ProtosError::Io`] if one cannot be
    /// read, otherwise as [`from_json`](Self::from_json), naming the file by its path.
    pub fn load_dir(dir: &Path) -> Result<Protos, ProtosError> {
        let read = |name: &str| -> Result<Option<(String, String)>, ProtosError> {
            let path = dir.join(name);
            let file = path.display().to_string();
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(Some((file, text))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(error) => Err(ProtosError::Io { file, error }),
            }
        };
        let server = read("serverProtos.json")?;
        let client = read("clientProtos.json")?;
        if server.is_none() && client.is_none() {
            return Err(ProtosError::NoFiles {
                dir: dir.to_path_buf(),
            });
        }
        let empty = |name: &str| (dir.join(name).display().to_string(), "{}".to_owned());
        let server = server.unwrap_or_else(|| empty("serverProtos.json"));
        let client = client.unwrap_or_else(|| empty("clientProtos.json"));
        Protos::build((&server.0, &server.1), (&client.0, &client.1))
    }

    fn build(server: (&str, &str), client: (&str, &str)) -> Result<Protos, ProtosError> {
        let parse = |(file, text): (&str, &str)| {
            let text = text.strip_prefix('\u{feff}').unwrap_or(text);
            let node = source::parse(text).map_err(|error| ProtosError::Json {
                file: file.to_owned(),
                error,
            })?;
            schema::parse_file(&node, file)
        };
        let parsed_server = parse(server)?;
        let parsed_client = parse(client)?;

        let mut server_text = Vec::new();
        schema::write_parsed(&parsed_server, &mut server_text);
        let mut client_text = Vec::new();
        schema::write_parsed(&parsed_client, &mut client_text);

        // pinus: md5(JSON.stringify(client) + JSON.stringify(server)), base64.
        let mut md5 = Md5::new();
        md5.update(&client_text);
        md5.update(&server_text);
        let mut text = [0u8; 24]; // base64 of 16 bytes
        let n = base64::engine::general_purpose::STANDARD
            .encode_slice(md5.finalize(), &mut text)
            .unwrap_or(0);
        let version = String::from_utf8_lossy(text.get(..n).unwrap_or_default()).into_owned();

        let mut handshake = Vec::with_capacity(server_text.len() + client_text.len() + 64);
        handshake.extend_from_slice(b"{\"server\":");
        handshake.extend_from_slice(&server_text);
        handshake.extend_from_slice(b",\"client\":");
        handshake.extend_from_slice(&client_text);
        handshake.extend_from_slice(b",\"version\":\"");
        handshake.extend_from_slice(version.as_bytes());
        handshake.extend_from_slice(b"\"}");

        Ok(Protos {
            server: routes(&parsed_server),
            client: routes(&parsed_client),
            version,
            // Written from &str pieces and ASCII only.
            handshake: String::from_utf8(handshake).unwrap_or_default(),
        })
    }

    /// The protos version: `base64(md5(JSON.stringify(parsedClient) +
    /// JSON.stringify(parsedServer)))`, as pinus computes it. A client that sends it back as
    /// `sys.protoVersion` already has these protos.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The handshake reply's `sys.protos` as JSON text:
    /// `{"server":<parsed server>,"client":<parsed client>,"version":"<version>"}`, byte for
    /// byte as pinus writes it (key order included).
    pub fn handshake_json(&self) -> &str {
        &self.handshake
    }

    /// The schema of `route`'s server message (responses to requests on `route`, and pushes
    /// on `route`). No allocation.
    pub fn server(&self, route: &str) -> Option<&Message> {
        self.server.get(route)
    }

    /// The schema of `route`'s client message (requests and notifies on `route`). No
    /// allocation.
    pub fn client(&self, route: &str) -> Option<&Message> {
        self.client.get(route)
    }
}

fn routes(parsed: &schema::ParsedFile) -> AHashMap<Box<str>, Message> {
    let (arena, routes) = schema::compile(parsed);
    let arena = Arc::new(arena);
    routes
        .into_iter()
        .map(|(route, index)| {
            let message = Message {
                arena: Arc::clone(&arena),
                index,
            };
            (route.into_boxed_str(), message)
        })
        .collect()
}

impl fmt::Debug for Protos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Protos")
            .field("server_routes", &self.server.len())
            .field("client_routes", &self.client.len())
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Message {
    /// The exact number of bytes [`encode`](Self::encode) writes for `value`.
    ///
    /// # Errors
    ///
    /// Exactly when [`encode`](Self::encode) fails, with the same error.
    pub fn encoded_len(&self, value: &Value) -> Result<usize, ProtoEncodeError> {
        let mut counter = encode::Counter(0);
        encode::message(&self.arena, self.index, value, 1, &mut counter)?;
        Ok(counter.0)
    }

    /// Appends the encoding of `value` (a JSON object) to `out`. On error `out` is left as it
    /// was.
    ///
    /// # Errors
    ///
    /// [`ProtoEncodeError`]: a required field missing, a value of the wrong type or out of
    /// range, a field of an unknown type or of an unsupported option, nesting past
    /// [`MAX_DEPTH`].
    pub fn encode(&self, value: &Value, out: &mut Vec<u8>) -> Result<(), ProtoEncodeError> {
        let start = out.len();
        let result = encode::message(&self.arena, self.index, value, 1, out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// Decodes one message (the whole of `bytes`) to a JSON object.
    ///
    /// # Errors
    ///
    /// [`ProtoDecodeError`]: truncated input, a bad varint, an unknown tag, a field of an
    /// unknown type or of an unsupported option, nesting past [`MAX_DEPTH`].
    pub fn decode(&self, bytes: &[u8]) -> Result<Value, ProtoDecodeError> {
        decode::message(&self.arena, self.index, bytes, 1).map(Value::Object)
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: Vec<&str> = self
            .arena
            .get(self.index)
            .map(|s| s.fields.iter().map(|f| &*f.name).collect())
            .unwrap_or_default();
        f.debug_struct("Message").field("fields", &fields).finish()
    }
}

#[cfg(test)]
mod tests;
