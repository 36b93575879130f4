//! JSON value → bytes.
//!
//! One walk serves both [`Message::encoded_len`](super::Message::encoded_len) and
//! [`Message::encode`](super::Message::encode), generic over where the bytes go, so the two
//! can never disagree on a length or on which values are refused.
//!
//! Rules (pinus's encoder, made strict where it would throw or write garbage):
//! * fields are written in the value's key order; keys the proto does not declare are skipped;
//! * `null` is an absent field (pinus crashes on it), except in `float` / `double` fields and
//!   elements, where it is NaN: the decoder turns non-finite numbers into `null`;
//! * integers come from JSON numbers; a fraction is dropped toward zero (pinus `parseInt`s);
//!   `uInt32` / `uInt64` refuse negative numbers, every integer type refuses what does not fit
//!   64 bits (zigzag types: `i64`);
//! * `bool` takes JSON booleans only (pinus takes any value's truthiness), strings JSON
//!   strings only;
//! * an empty array writes nothing; packed repeated (numbers, `bool`) write one key, the
//!   element count, the elements; strings and messages one key per element;
//! * a nested message is its varint byte length then its fields (one byte is reserved for the
//!   length and the body moved only when the length needs more).

use super::schema::{Arena, Field, Kind, Opt, Schema};
use super::wire;
use super::{ProtoEncodeError, MAX_DEPTH};
use serde_json::Value;

/// Where encoded bytes go: a vector, or a counter.
pub(super) trait Sink {
    fn put(&mut self, bytes: &[u8]);

    /// Runs `body` and prefixes what it wrote with its varint byte length.
    fn nested(
        &mut self,
        body: impl FnOnce(&mut Self) -> Result<(), ProtoEncodeError>,
    ) -> Result<(), ProtoEncodeError>;

    fn varint(&mut self, value: u64) {
        let (bytes, n) = wire::varint(value);
        self.put(bytes.get(..n).unwrap_or_default());
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn nested(
        &mut self,
        body: impl FnOnce(&mut Self) -> Result<(), ProtoEncodeError>,
    ) -> Result<(), ProtoEncodeError> {
        let at = self.len();
        self.push(0);
        body(self)?;
        let len = self.len() - at - 1;
        let (bytes, n) = wire::varint(len as u64);
        match (n, self.get_mut(at)) {
            // The usual case: the length fits the reserved byte.
            (1, Some(slot)) => *slot = bytes[0],
            // A longer length shifts the body (bodies of 128 bytes or more only).
            _ => {
                self.splice(
                    at..at + 1,
                    bytes.get(..n).unwrap_or_default().iter().copied(),
                );
            }
        }
        Ok(())
    }
}

/// Counts bytes instead of writing them.
pub(super) struct Counter(pub(super) usize);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }

    fn nested(
        &mut self,
        body: impl FnOnce(&mut Self) -> Result<(), ProtoEncodeError>,
    ) -> Result<(), ProtoEncodeError> {
        let before = self.0;
        body(self)?;
        self.0 += wire::varint_len((self.0 - before) as u64);
        Ok(())
    }
}

/// Adds `parent` in front of the field path of an error.
fn within(error: ProtoEncodeError, parent: &str) -> ProtoEncodeError {
    let prefix = |field: String| {
        if field.is_empty() {
            parent.to_owned()
        } else {
            format!("{parent}.{field}")
        }
    };
    match error {
        ProtoEncodeError::MissingRequired { field } => ProtoEncodeError::MissingRequired {
            field: prefix(field),
        },
        ProtoEncodeError::WrongType { field, expected } => ProtoEncodeError::WrongType {
            field: prefix(field),
            expected,
        },
        ProtoEncodeError::OutOfRange { field } => ProtoEncodeError::OutOfRange {
            field: prefix(field),
        },
        ProtoEncodeError::UnknownType { field, type_name } => ProtoEncodeError::UnknownType {
            field: prefix(field),
            type_name,
        },
        ProtoEncodeError::Unsupported { field, option } => ProtoEncodeError::Unsupported {
            field: prefix(field),
            option,
        },
        other => other,
    }
}

/// A wrong type for the value at hand (the callers add the field path).
fn wrong(expected: &'static str) -> ProtoEncodeError {
    ProtoEncodeError::WrongType {
        field: String::new(),
        expected,
    }
}

fn out_of_range() -> ProtoEncodeError {
    ProtoEncodeError::OutOfRange {
        field: String::new(),
    }
}

/// Encodes `value` as message `index` of `arena` at nesting `depth` (the top is 1).
pub(super) fn message<S: Sink>(
    arena: &Arena,
    index: usize,
    value: &Value,
    depth: usize,
    out: &mut S,
) -> Result<(), ProtoEncodeError> {
    if depth > MAX_DEPTH {
        return Err(ProtoEncodeError::TooDeep);
    }
    let Some(schema) = arena.get(index) else {
        return Ok(());
    };
    let Value::Object(object) = value else {
        return Err(ProtoEncodeError::WrongType {
            field: String::new(),
            expected: "an object",
        });
    };
    // Required fields are counted on the way; the missing one is looked for only on error.
    let mut required = 0;
    for (name, value) in object {
        let Some(field) = schema.field(name) else {
            continue;
        };
        if value.is_null() && !matches!(field.kind, Kind::Float | Kind::Double) {
            continue;
        }
        if field.option == Opt::Required {
            required += 1;
        }
        match field.option {
            Opt::Required | Opt::Optional => {
                out.put(field.key());
                scalar_or_message(arena, field, value, depth, out)
                    .map_err(|e| within(e, &field.name))?;
            }
            Opt::Repeated => {
                let Value::Array(items) = value else {
                    if value.is_null() {
                        continue;
                    }
                    return Err(within(wrong("an array"), &field.name));
                };
                if items.is_empty() {
                    continue;
                }
                if field.kind.is_packed() {
                    out.put(field.key());
                    out.varint(items.len() as u64);
                    for (i, item) in items.iter().enumerate() {
                        scalar_or_message(arena, field, item, depth, out)
                            .map_err(|e| within(e, &i.to_string()))
                            .map_err(|e| within(e, &field.name))?;
                    }
                } else {
                    for (i, item) in items.iter().enumerate() {
                        out.put(field.key());
                        scalar_or_message(arena, field, item, depth, out)
                            .map_err(|e| within(e, &i.to_string()))
                            .map_err(|e| within(e, &field.name))?;
                    }
                }
            }
            Opt::Unsupported(option) => {
                return Err(ProtoEncodeError::Unsupported {
                    field: field.name.to_string(),
                    option,
                })
            }
        }
    }
    if required < schema.required {
        check_required(schema, object)?;
    }
    Ok(())
}

fn check_required(
    schema: &Schema,
    object: &serde_json::Map<String, Value>,
) -> Result<(), ProtoEncodeError> {
    for field in &schema.fields {
        let present = match object.get(&*field.name) {
            None => false,
            Some(Value::Null) => matches!(field.kind, Kind::Float | Kind::Double), // NaN
            Some(_) => true,
        };
        if field.option == Opt::Required && !present {
            return Err(ProtoEncodeError::MissingRequired {
                field: field.name.to_string(),
            });
        }
    }
    Ok(())
}

/// One value of `field` (an element, for a repeated field). Errors carry the path below
/// this value; the caller adds the field name (and the element index).
fn scalar_or_message<S: Sink>(
    arena: &Arena,
    field: &Field,
    value: &Value,
    depth: usize,
    out: &mut S,
) -> Result<(), ProtoEncodeError> {
    match &field.kind {
        Kind::Unsigned => {
            let n = integer(value).ok_or_else(|| wrong("a number"))?;
            let n = u64::try_from(n).map_err(|_| out_of_range())?;
            out.varint(n);
        }
        Kind::Signed => {
            let n = integer(value).ok_or_else(|| wrong("a number"))?;
            let n = i64::try_from(n).map_err(|_| out_of_range())?;
            out.varint(wire::zigzag(n));
        }
        Kind::Bool => {
            let b = value.as_bool().ok_or_else(|| wrong("a boolean"))?;
            out.varint(u64::from(b));
        }
        Kind::Float => out.put(&(float(value)? as f32).to_le_bytes()),
        Kind::Double => out.put(&float(value)?.to_le_bytes()),
        Kind::String => {
            let s = value.as_str().ok_or_else(|| wrong("a string"))?;
            out.varint(s.len() as u64);
            out.put(s.as_bytes());
        }
        Kind::Message(index) => {
            if !value.is_object() {
                return Err(wrong("an object"));
            }
            out.nested(|out| message(arena, *index, value, depth + 1, out))?;
        }
        Kind::Unknown(type_name) => {
            return Err(ProtoEncodeError::UnknownType {
                field: String::new(),
                type_name: type_name.to_string(),
            })
        }
    }
    Ok(())
}

/// A JSON number as an integer, any fraction dropped toward zero (saturating far beyond
/// 64 bits, which no integer type holds); `None` if not a number.
fn integer(value: &Value) -> Option<i128> {
    let Value::Number(n) = value else {
        return None;
    };
    if let Some(u) = n.as_u64() {
        return Some(i128::from(u));
    }
    if let Some(i) = n.as_i64() {
        return Some(i128::from(i));
    }
    // serde_json numbers are finite; `as` saturates past i128.
    Some(n.as_f64()?.trunc() as i128)
}

/// A `float` / `double` value: a number, or `null` for NaN.
fn float(value: &Value) -> Result<f64, ProtoEncodeError> {
    match value {
        Value::Null => Ok(f64::NAN),
        Value::Number(n) => n.as_f64().ok_or_else(|| wrong("a number")),
        _ => Err(wrong("a number")),
    }
}
