//! From the source files to the parsed form (what pinus announces and hashes) and to the
//! compiled schema the codec walks.
//!
//! # The parsed form
//!
//! pinus-protobuf's parser, for each route (every top-level key, `"message X"` ones included):
//! walks the entries in JavaScript property order; `"message Name": {…}` (two words) becomes
//! `__messages.Name`, parsed the same way; `"<option> <type> <name>": <tag>` (three words,
//! option `required`, `optional`, `repeated`, or pinus's `map` / `obj`) becomes the field
//! `name: {"option", "type", "tag"}` and `__tags["<tag>"] = name`, unless the tag was already
//! used in this message; anything else is dropped. A field or message name given twice keeps
//! its first place and its last definition. `__messages` and `__tags` come after the fields.
//! [`write_parsed`] writes that object as `JSON.stringify` does (array-index keys first,
//! ascending, in every object).
//!
//! Inputs whose parsed form JavaScript would mangle in ways not worth reproducing are refused
//! with [`ProtosError::BadEntry`] instead of silently announcing something different: tags
//! that are not integers in `0..2^28` (pinus shifts them into a 32-bit key), empty field names,
//! `__proto__` anywhere, and fields named `__messages` or `__tags`.
//!
//! # Type resolution
//!
//! As in pinus-protobuf and pomelo-protobuf (encoder and decoder, Node and browser builds): a
//! field's type is a scalar type name, else a message in **the field's own message's**
//! `__messages`, else a root `"message Type"` entry of the same file. Messages of enclosing
//! messages are not searched: the reference codecs do not find them, so a client could not
//! decode what such a field would carry. Unresolved types load fine (the parsed form is what
//! it is) and fail when a value of that field is encoded or decoded.

use super::source::Node;
use super::wire;
use super::ProtosError;
use ahash::AHashMap;

/// `(tag << 3) | wire_type` must stay a positive 32-bit integer in JavaScript.
const MAX_TAG: u32 = (1 << 28) - 1;

/// A JavaScript object with string keys: setting an existing key replaces its value in place.
#[derive(Debug, Clone)]
pub(super) struct JsObject<V>(Vec<(String, V)>);

impl<V> Default for JsObject<V> {
    fn default() -> Self {
        JsObject(Vec::new())
    }
}

impl<V> JsObject<V> {
    fn set(&mut self, key: &str, value: V) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key.to_owned(), value)),
        }
    }

    /// The entries in JavaScript property order.
    fn ordered(&self) -> Vec<&(String, V)> {
        let mut refs: Vec<&(String, V)> = self.0.iter().collect();
        refs.sort_by_key(|(key, _)| match super::source::array_index(key) {
            Some(n) => (0, n),
            None => (1, 0),
        });
        refs
    }
}

/// One field of the parsed form.
#[derive(Debug, Clone)]
pub(super) struct ParsedField {
    option: &'static str,
    type_name: String,
    tag: u32,
}

/// One message of the parsed form.
#[derive(Debug, Clone, Default)]
pub(super) struct ParsedMessage {
    fields: JsObject<ParsedField>,
    messages: JsObject<ParsedMessage>,
    /// tag → field name; at most one entry per tag.
    tags: Vec<(u32, String)>,
}

/// One file's parsed form: route (or `"message X"`) → message.
pub(super) type ParsedFile = JsObject<ParsedMessage>;

/// Parses one file's source tree. `file` names it in errors.
pub(super) fn parse_file(node: &Node, file: &str) -> Result<ParsedFile, ProtosError> {
    let Node::Object(entries) = node else {
        return Err(ProtosError::NotAnObject {
            file: file.to_owned(),
        });
    };
    let mut routes = ParsedFile::default();
    for (route, body) in entries {
        if route == "__proto__" {
            return Err(bad(file, "", route, "\"__proto__\" is not a usable name"));
        }
        // The source scanner already merged repeated keys: no lookup needed here.
        routes
            .0
            .push((route.clone(), parse_message(body, file, route)?));
    }
    Ok(routes)
}

fn bad(file: &str, path: &str, key: &str, reason: &'static str) -> ProtosError {
    ProtosError::BadEntry {
        file: file.to_owned(),
        key: if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}/{key}")
        },
        reason,
    }
}

fn parse_message(node: &Node, file: &str, path: &str) -> Result<ParsedMessage, ProtosError> {
    let mut message = ParsedMessage::default();
    // Anything but an object has no enumerable entries the parser would use: an empty message.
    let Node::Object(entries) = node else {
        return Ok(message);
    };
    for (key, value) in entries {
        let words: Vec<&str> = key.split(' ').collect();
        match words[..] {
            ["message", name] => {
                if name == "__proto__" {
                    return Err(bad(file, path, key, "\"__proto__\" is not a usable name"));
                }
                let inner = parse_message(value, file, &format!("{path}/{key}"))?;
                message.messages.set(name, inner);
            }
            [option @ ("required" | "optional" | "repeated" | "map" | "obj"), type_name, name] => {
                let tag = match value {
                    Node::Number(t)
                        if t.fract() == 0.0 && (0.0..=f64::from(MAX_TAG)).contains(t) =>
                    {
                        *t as u32
                    }
                    _ => {
                        return Err(bad(
                            file,
                            path,
                            key,
                            "the tag must be an integer from 0 to 268435455",
                        ))
                    }
                };
                if message.tags.iter().any(|(t, _)| *t == tag) {
                    continue; // pinus drops a field whose tag is taken
                }
                match name {
                    "" => return Err(bad(file, path, key, "empty field name")),
                    "__proto__" | "__messages" | "__tags" => {
                        return Err(bad(file, path, key, "reserved field name"))
                    }
                    _ => {}
                }
                let option = match option {
                    "required" => "required",
                    "optional" => "optional",
                    "repeated" => "repeated",
                    "map" => "map",
                    _ => "obj",
                };
                message.fields.set(
                    name,
                    ParsedField {
                        option,
                        type_name: type_name.to_owned(),
                        tag,
                    },
                );
                message.tags.push((tag, name.to_owned()));
            }
            _ => {} // dropped, as pinus drops it
        }
    }
    message.tags.sort_by_key(|(tag, _)| *tag);
    Ok(message)
}

/// Appends `JSON.stringify(parsed)` to `out`.
pub(super) fn write_parsed(parsed: &ParsedFile, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (route, message)) in parsed.ordered().into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        crate::protocol::json::write_str(route, out);
        out.push(b':');
        write_message(message, out);
    }
    out.push(b'}');
}

fn write_message(message: &ParsedMessage, out: &mut Vec<u8>) {
    out.push(b'{');
    for (name, field) in message.fields.ordered() {
        crate::protocol::json::write_str(name, out);
        out.extend_from_slice(b":{\"option\":");
        crate::protocol::json::write_str(field.option, out);
        out.extend_from_slice(b",\"type\":");
        crate::protocol::json::write_str(&field.type_name, out);
        out.extend_from_slice(b",\"tag\":");
        out.extend_from_slice(field.tag.to_string().as_bytes());
        out.extend_from_slice(b"},");
    }
    out.extend_from_slice(b"\"__messages\":{");
    for (i, (name, inner)) in message.messages.ordered().into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        crate::protocol::json::write_str(name, out);
        out.push(b':');
        write_message(inner, out);
    }
    out.extend_from_slice(b"},\"__tags\":{");
    for (i, (tag, name)) in message.tags.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(tag.to_string().as_bytes());
        out.extend_from_slice(b"\":");
        crate::protocol::json::write_str(name, out);
    }
    out.extend_from_slice(b"}}");
}

// === compiled schema ===

/// A field's option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Opt {
    Required,
    Optional,
    Repeated,
    /// pinus's `map` / `obj` (parsed, announced, not encoded).
    Unsupported(&'static str),
}

/// What a field's values are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    /// `uInt32`, `uInt64`: plain varint.
    Unsigned,
    /// `sInt32`, `int32`, `sInt64`: zigzag varint.
    Signed,
    /// `bool` (pinus): varint 0 / 1.
    Bool,
    /// `float`: 4 bytes little-endian.
    Float,
    /// `double`: 8 bytes little-endian.
    Double,
    /// `string`: length + UTF-8.
    String,
    /// A message: length + the message; the index in the arena.
    Message(usize),
    /// A type the reference codecs would not find.
    Unknown(Box<str>),
}

impl Kind {
    /// Repeated fields of these types are packed: one key, an element count, the elements.
    pub(super) fn is_packed(&self) -> bool {
        matches!(
            self,
            Kind::Unsigned | Kind::Signed | Kind::Bool | Kind::Float | Kind::Double
        )
    }

    /// The fewest bytes one packed element takes (bounds an element count by the input).
    pub(super) fn min_len(&self) -> usize {
        match self {
            Kind::Float => 4,
            Kind::Double => 8,
            _ => 1,
        }
    }
}

/// One compiled field.
#[derive(Debug, Clone)]
pub(super) struct Field {
    pub(super) name: Box<str>,
    pub(super) option: Opt,
    pub(super) kind: Kind,
    /// The encoded key `varint(tag << 3 | wire type)`.
    key: [u8; 5],
    key_len: u8,
}

impl Field {
    pub(super) fn key(&self) -> &[u8] {
        self.key
            .get(..usize::from(self.key_len))
            .unwrap_or_default()
    }
}

/// Up to this many fields, a name is found by a linear scan (cheaper than hashing it).
const SCAN_FIELDS: usize = 8;

/// Tags below this are looked up in a table, the rest in a hash map.
const DENSE_TAGS: usize = 64;

/// One compiled message.
#[derive(Debug, Clone, Default)]
pub(super) struct Schema {
    pub(super) fields: Vec<Field>,
    /// How many fields are `required`.
    pub(super) required: usize,
    /// name → field, for messages of more than [`SCAN_FIELDS`] fields.
    by_name: AHashMap<Box<str>, usize>,
    /// `dense[tag]` = field index + 1 (0: none), for tags below [`DENSE_TAGS`].
    dense: Vec<u16>,
    /// tag → field, for the other tags.
    by_tag: AHashMap<u32, usize>,
}

impl Schema {
    pub(super) fn field(&self, name: &str) -> Option<&Field> {
        if self.fields.len() <= SCAN_FIELDS {
            return self.fields.iter().find(|f| &*f.name == name);
        }
        self.by_name.get(name).and_then(|&i| self.fields.get(i))
    }

    pub(super) fn by_tag(&self, tag: u32) -> Option<&Field> {
        let index = match self.dense.get(tag as usize) {
            Some(&slot) => usize::from(slot).checked_sub(1)?,
            None => *self.by_tag.get(&tag)?,
        };
        self.fields.get(index)
    }

    fn index_tag(&mut self, tag: u32, index: usize) {
        match (self.dense.get_mut(tag as usize), u16::try_from(index + 1)) {
            (Some(slot), Ok(value)) => *slot = value,
            _ => {
                self.by_tag.insert(tag, index);
            }
        }
    }
}

/// Every message of one file, routes and nested ones alike.
#[derive(Debug, Default)]
pub(super) struct Arena {
    pub(super) messages: Vec<Schema>,
}

impl Arena {
    pub(super) fn get(&self, index: usize) -> Option<&Schema> {
        self.messages.get(index)
    }
}

/// Compiles a file's parsed form: the arena and route → arena index.
pub(super) fn compile(parsed: &ParsedFile) -> (Arena, Vec<(String, usize)>) {
    // Number every message (preorder), remembering each one's nested name → index.
    let mut list: Vec<(&ParsedMessage, Vec<(&str, usize)>)> = Vec::new();
    let mut routes = Vec::new();
    for (route, message) in &parsed.0 {
        routes.push((route.clone(), number(message, &mut list)));
    }
    let root: Vec<(&str, usize)> = routes
        .iter()
        .filter_map(|(route, i)| route.strip_prefix("message ").map(|name| (name, *i)))
        .collect();
    let messages = list
        .iter()
        .map(|(message, nested)| {
            let resolve = |type_name: &str| -> Kind {
                match type_name {
                    "uInt32" | "uInt64" => Kind::Unsigned,
                    "int32" | "sInt32" | "sInt64" => Kind::Signed,
                    "bool" => Kind::Bool,
                    "float" => Kind::Float,
                    "double" => Kind::Double,
                    "string" => Kind::String,
                    _ => nested
                        .iter()
                        .chain(root.iter())
                        .find(|(name, _)| *name == type_name)
                        .map(|&(_, i)| Kind::Message(i))
                        .unwrap_or_else(|| Kind::Unknown(type_name.into())),
                }
            };
            let mut schema = Schema {
                dense: vec![0; DENSE_TAGS],
                ..Schema::default()
            };
            for (name, parsed) in &message.fields.0 {
                let kind = resolve(&parsed.type_name);
                let option = match parsed.option {
                    "required" => Opt::Required,
                    "optional" => Opt::Optional,
                    "repeated" => Opt::Repeated,
                    other => Opt::Unsupported(other),
                };
                // pinus's TYPES table; anything else (string, messages, unknown) is 2.
                let wire_type = match kind {
                    Kind::Unsigned | Kind::Signed | Kind::Bool => 0,
                    Kind::Double => 1,
                    Kind::Float => 5,
                    _ => 2,
                };
                let (bytes, n) = wire::varint(u64::from(parsed.tag) << 3 | wire_type);
                let mut key = [0u8; 5];
                key.copy_from_slice(bytes.get(..5).unwrap_or(&[0; 5]));
                schema
                    .by_name
                    .insert(name.as_str().into(), schema.fields.len());
                schema.fields.push(Field {
                    name: name.as_str().into(),
                    option,
                    kind,
                    key,
                    key_len: n as u8,
                });
            }
            for (tag, name) in &message.tags {
                if let Some(&i) = schema.by_name.get(name.as_str()) {
                    schema.index_tag(*tag, i);
                }
            }
            schema.required = schema
                .fields
                .iter()
                .filter(|f| f.option == Opt::Required)
                .count();
            schema
        })
        .collect();
    (Arena { messages }, routes)
}

fn number<'a>(
    message: &'a ParsedMessage,
    list: &mut Vec<(&'a ParsedMessage, Vec<(&'a str, usize)>)>,
) -> usize {
    let me = list.len();
    list.push((message, Vec::new()));
    let nested: Vec<(&str, usize)> = message
        .messages
        .0
        .iter()
        .map(|(name, inner)| (name.as_str(), number(inner, list)))
        .collect();
    if let Some(entry) = list.get_mut(me) {
        entry.1 = nested;
    }
    me
}
