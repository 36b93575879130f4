//! Bytes → JSON value.
//!
//! Rules (pinus's decoder, made strict where it would read garbage):
//! * the wire-type bits of a key are ignored: a field is decoded by its declared type (the
//!   browser build of pomelo-protobuf writes varint fields with wire type 2);
//! * an unknown tag is an error ([`ProtoDecodeError::UnknownTag`]), not skipped: the wire type
//!   cannot be trusted to say how long the field is;
//! * a singular field given twice keeps the last value; repeated fields collect every element
//!   of every occurrence (a packed occurrence with a count of 0 gives `[]`, as in pinus);
//! * `required` is not checked (pinus does not check it either);
//! * strings are decoded lossily: invalid UTF-8 (such as the CESU-8 the browser build writes
//!   outside the Basic Multilingual Plane) becomes U+FFFD;
//! * numbers as JavaScript would hold them, exactly where JSON can: unsigned varints as
//!   `u64`, zigzag ones as `i64`, `float` widened from `f32` (0.3 arrives as
//!   0.30000001192092896), non-finite `float` / `double` as `null`;
//! * lengths and counts are checked against the bytes left before anything is built, and
//!   nesting is bounded by [`MAX_DEPTH`], so the work and memory are linear in the input.

use super::schema::{Arena, Field, Kind, Opt};
use super::wire::{self, Reader};
use super::{ProtoDecodeError, MAX_DEPTH};
use serde_json::{Map, Number, Value};

/// Decodes the whole of `bytes` as message `index` of `arena` at nesting `depth` (the top
/// is 1).
pub(super) fn message(
    arena: &Arena,
    index: usize,
    bytes: &[u8],
    depth: usize,
) -> Result<Map<String, Value>, ProtoDecodeError> {
    if depth > MAX_DEPTH {
        return Err(ProtoDecodeError::TooDeep);
    }
    let mut object = Map::new();
    let Some(schema) = arena.get(index) else {
        return Ok(object);
    };
    let mut r = Reader::new(bytes);
    while !r.is_empty() {
        let key = r.varint()?;
        let key = u32::try_from(key).map_err(|_| ProtoDecodeError::BadVarint)?;
        let tag = key >> 3;
        let field = schema
            .by_tag(tag)
            .ok_or(ProtoDecodeError::UnknownTag { tag })?;
        match field.option {
            Opt::Required | Opt::Optional => {
                let value = one(arena, field, &mut r, depth)?;
                object.insert(field.name.to_string(), value);
            }
            Opt::Repeated => {
                // Look up before inserting: the key is allocated once per field, not per element.
                if !object.contains_key(&*field.name) {
                    object.insert(field.name.to_string(), Value::Array(Vec::new()));
                }
                let Some(slot) = object.get_mut(&*field.name) else {
                    continue;
                };
                let Value::Array(items) = slot else {
                    // Not reachable: a name is one field; keep the value consistent anyway.
                    *slot = Value::Array(Vec::new());
                    continue;
                };
                if field.kind.is_packed() {
                    let count = r.varint()?;
                    // Every element takes at least min_len bytes: refuse a count the input
                    // cannot hold before building anything.
                    let most = (r.remaining() / field.kind.min_len()) as u64;
                    if count > most {
                        return Err(ProtoDecodeError::Truncated);
                    }
                    items.reserve(count as usize);
                    for _ in 0..count {
                        items.push(one(arena, field, &mut r, depth)?);
                    }
                } else {
                    items.push(one(arena, field, &mut r, depth)?);
                }
            }
            Opt::Unsupported(option) => {
                return Err(ProtoDecodeError::Unsupported {
                    field: field.name.to_string(),
                    option,
                })
            }
        }
    }
    Ok(object)
}

/// A finite number as JSON, anything else as `null`.
fn number(value: f64) -> Value {
    Number::from_f64(value).map_or(Value::Null, Value::Number)
}

/// One value (or packed element) of `field`.
fn one(
    arena: &Arena,
    field: &Field,
    r: &mut Reader<'_>,
    depth: usize,
) -> Result<Value, ProtoDecodeError> {
    Ok(match &field.kind {
        Kind::Unsigned => Value::from(r.varint()?),
        Kind::Signed => Value::from(wire::unzigzag(r.varint()?)),
        Kind::Bool => Value::Bool(r.varint()? != 0),
        Kind::Float => number(f64::from(f32::from_le_bytes(r.fixed::<4>()?))),
        Kind::Double => number(f64::from_le_bytes(r.fixed::<8>()?)),
        Kind::String => {
            let len = r.varint()?;
            let len = usize::try_from(len).map_err(|_| ProtoDecodeError::Truncated)?;
            Value::String(String::from_utf8_lossy(r.take(len)?).into_owned())
        }
        Kind::Message(index) => {
            if depth >= MAX_DEPTH {
                return Err(ProtoDecodeError::TooDeep);
            }
            let len = r.varint()?;
            let len = usize::try_from(len).map_err(|_| ProtoDecodeError::Truncated)?;
            Value::Object(message(arena, *index, r.take(len)?, depth + 1)?)
        }
        Kind::Unknown(type_name) => {
            return Err(ProtoDecodeError::UnknownType {
                field: field.name.to_string(),
                type_name: type_name.to_string(),
            })
        }
    })
}
