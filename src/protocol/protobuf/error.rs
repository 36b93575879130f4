//! The three error types: loading protos, encoding a value, decoding bytes.

use std::fmt;
use std::path::PathBuf;

/// Why a set of proto files could not be loaded ([`Protos::from_json`](super::Protos::from_json),
/// [`Protos::load_dir`](super::Protos::load_dir)). Every variant names the file.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProtosError {
    /// Neither `serverProtos.json` nor `clientProtos.json` exists in the directory.
    NoFiles {
        /// The directory looked in.
        dir: PathBuf,
    },
    /// A file exists but could not be read.
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A file is not valid JSON (or nests deeper than 64).
    Json {
        /// The file.
        file: String,
        /// What is wrong, and where.
        error: String,
    },
    /// A file's top level is not a JSON object.
    NotAnObject {
        /// The file.
        file: String,
    },
    /// An entry that pinus would load into a form this crate cannot reproduce byte for byte
    /// (so the handshake and the version would silently differ): a tag that is not an integer
    /// in `0..2^28`, an empty field name, or a name JavaScript treats specially (`__proto__`,
    /// and `__messages` / `__tags` as field names).
    BadEntry {
        /// The file.
        file: String,
        /// The route and enclosing message names, then the key, joined with `/`.
        key: String,
        /// Why.
        reason: &'static str,
    },
}

impl fmt::Display for ProtosError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtosError::NoFiles { dir } => write!(
                f,
                "no serverProtos.json nor clientProtos.json in {}",
                dir.display()
            ),
            ProtosError::Io { file, error } => write!(f, "{file}: {error}"),
            ProtosError::Json { file, error } => write!(f, "{file}: invalid JSON: {error}"),
            ProtosError::NotAnObject { file } => {
                write!(f, "{file}: the top level is not a JSON object")
            }
            ProtosError::BadEntry { file, key, reason } => write!(f, "{file}: {key:?}: {reason}"),
        }
    }
}

impl std::error::Error for ProtosError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProtosError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Why a value could not be encoded ([`Message::encode`](super::Message::encode),
/// [`Message::encoded_len`](super::Message::encoded_len)). Fields are named by their path
/// from the top message (`path.2.x`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtoEncodeError {
    /// A `required` field is absent (or `null`).
    MissingRequired {
        /// The field.
        field: String,
    },
    /// A value of the wrong JSON type.
    WrongType {
        /// The field.
        field: String,
        /// What the proto wants: "an object", "an array", "a number", "a string", "a boolean".
        expected: &'static str,
    },
    /// A number outside its type's range: negative for `uInt32`/`uInt64`, not finite, or
    /// beyond 64 bits.
    OutOfRange {
        /// The field.
        field: String,
    },
    /// The field's type is neither a scalar type nor a message the reference encoders would
    /// find (the enclosing message's `__messages`, then the root `"message X"` entries).
    UnknownType {
        /// The field.
        field: String,
        /// The type name in the proto.
        type_name: String,
    },
    /// The field uses pinus's `map` or `obj` option, which this codec does not encode.
    Unsupported {
        /// The field.
        field: String,
        /// The option.
        option: &'static str,
    },
    /// Messages nested deeper than [`MAX_DEPTH`](super::MAX_DEPTH).
    TooDeep,
}

impl fmt::Display for ProtoEncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoEncodeError::MissingRequired { field } => {
                write!(f, "required field {field:?} is missing")
            }
            ProtoEncodeError::WrongType { field, expected } => {
                write!(f, "field {field:?} must be {expected}")
            }
            ProtoEncodeError::OutOfRange { field } => {
                write!(f, "field {field:?}: number out of range for its type")
            }
            ProtoEncodeError::UnknownType { field, type_name } => {
                write!(f, "field {field:?}: unknown type {type_name:?}")
            }
            ProtoEncodeError::Unsupported { field, option } => {
                write!(f, "field {field:?}: option {option:?} is not supported")
            }
            ProtoEncodeError::TooDeep => {
                write!(f, "messages nested deeper than {}", super::MAX_DEPTH)
            }
        }
    }
}

impl std::error::Error for ProtoEncodeError {}

/// Why bytes could not be decoded ([`Message::decode`](super::Message::decode)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtoDecodeError {
    /// The bytes end inside a field, or a length or element count runs past the end of the
    /// enclosing message.
    Truncated,
    /// A varint longer than 10 bytes or above 2^64 − 1, or a field key above 2^32 − 1.
    BadVarint,
    /// A tag the message does not declare. The reference decoders go on reading garbage; the
    /// wire types cannot be trusted to skip it (the browser build writes varints with wire
    /// type 2), so this is an error.
    UnknownTag {
        /// The tag.
        tag: u32,
    },
    /// The field's type cannot be decoded (see [`ProtoEncodeError::UnknownType`]).
    UnknownType {
        /// The field.
        field: String,
        /// The type name in the proto.
        type_name: String,
    },
    /// The field uses pinus's `map` or `obj` option (see [`ProtoEncodeError::Unsupported`]).
    Unsupported {
        /// The field.
        field: String,
        /// The option.
        option: &'static str,
    },
    /// Messages nested deeper than [`MAX_DEPTH`](super::MAX_DEPTH).
    TooDeep,
}

impl fmt::Display for ProtoDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoDecodeError::Truncated => write!(f, "truncated protobuf message"),
            ProtoDecodeError::BadVarint => write!(f, "varint out of range"),
            ProtoDecodeError::UnknownTag { tag } => write!(f, "unknown tag {tag}"),
            ProtoDecodeError::UnknownType { field, type_name } => {
                write!(f, "field {field:?}: unknown type {type_name:?}")
            }
            ProtoDecodeError::Unsupported { field, option } => {
                write!(f, "field {field:?}: option {option:?} is not supported")
            }
            ProtoDecodeError::TooDeep => {
                write!(f, "messages nested deeper than {}", super::MAX_DEPTH)
            }
        }
    }
}

impl std::error::Error for ProtoDecodeError {}
