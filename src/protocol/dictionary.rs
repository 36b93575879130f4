//! The route dictionary: route ↔ 2-byte code compression (`useDict`), built as pinus builds it.
//!
//! pinus (`components/dictionary.ts`) gathers every handler method as
//! `serverType.handlerName.method`, **sorts** the list, numbers it from 1, then appends the
//! entries of `config/dictionary` with the following codes. The version sent in the handshake
//! is `base64(md5(JSON.stringify(dict)))`, where `dict` is the route → code object.
//!
//! This module computes the same codes and the same version string byte for byte, so a client
//! that cached a pinus dictionary keeps it after the migration, with three documented
//! differences that only matter for inputs pinus mishandles:
//!
//! * a route listed twice keeps its first code and is not numbered again (pinus numbers every
//!   occurrence and lets the last one win in `dict`, leaving gaps and two codes for one route);
//! * more than 65 535 routes is an error (a code is 16 bits on the wire);
//! * the sort compares UTF-16 code units, as JavaScript's default sort does, so the order
//!   matches pinus even for routes with characters outside the Basic Multilingual Plane.

use super::json;
use super::message::Route;
use ahash::AHashMap;
use base64::Engine as _;
use md5::{Digest as _, Md5};
use std::cmp::Ordering;
use std::fmt;

/// The most routes a dictionary can hold: codes are 1..=65535.
pub const MAX_DICTIONARY_LEN: usize = u16::MAX as usize;

/// A route dictionary: handler routes sorted and numbered from 1, then extra routes.
///
/// Built once at startup (it allocates); lookups in both directions are allocation-free:
/// [`code`](Self::code) is one hash lookup, [`route`](Self::route) one index.
///
/// # Examples
///
/// ```
/// use gatehouse::protocol::{Dictionary, Route};
///
/// let dict = Dictionary::new(
///     ["connector.entryHandler.entry", "chat.chatHandler.say"],
///     ["onChat"],
/// )
/// .unwrap();
/// assert_eq!(dict.code("chat.chatHandler.say"), Some(1)); // sorted first
/// assert_eq!(dict.route(2), Some("connector.entryHandler.entry"));
/// assert_eq!(dict.code("onChat"), Some(3)); // extras follow
/// assert_eq!(dict.compress("onChat"), Route::Code(3));
/// assert_eq!(dict.compress("onOther"), Route::Name("onOther"));
/// assert_eq!(dict.version().len(), 24); // base64 of an MD5 digest
/// ```
#[derive(Clone)]
pub struct Dictionary {
    /// `routes[code - 1]` is the route of `code`.
    routes: Vec<Box<str>>,
    /// route → code.
    codes: AHashMap<Box<str>, u16>,
    /// The route → code object as JSON, in JavaScript's key order (see [`Dictionary::json`]).
    json: String,
    /// base64(md5(json)).
    version: String,
}

/// Why a [`Dictionary`] could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DictionaryError {
    /// More distinct routes than 16-bit codes (65 535).
    TooManyRoutes(usize),
}

impl fmt::Display for DictionaryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DictionaryError::TooManyRoutes(n) => {
                write!(
                    f,
                    "{n} routes exceed the {MAX_DICTIONARY_LEN} dictionary codes"
                )
            }
        }
    }
}

impl std::error::Error for DictionaryError {}

impl Dictionary {
    /// Builds the dictionary: `handler_routes` sorted (JavaScript order) and numbered from 1,
    /// then `extra_routes` (pinus's `config/dictionary`) in their given order. A route already
    /// present keeps its first code.
    ///
    /// # Errors
    ///
    /// [`DictionaryError::TooManyRoutes`] past 65 535 distinct routes.
    pub fn new<H, E>(handler_routes: H, extra_routes: E) -> Result<Dictionary, DictionaryError>
    where
        H: IntoIterator,
        H::Item: AsRef<str>,
        E: IntoIterator,
        E::Item: AsRef<str>,
    {
        let mut sorted: Vec<Box<str>> = handler_routes
            .into_iter()
            .map(|r| Box::from(r.as_ref()))
            .collect();
        sorted.sort_by(|a, b| js_cmp(a, b));
        let mut routes: Vec<Box<str>> = Vec::with_capacity(sorted.len());
        let mut codes: AHashMap<Box<str>, u16> = AHashMap::with_capacity(sorted.len());
        let extras = extra_routes.into_iter().map(|r| Box::from(r.as_ref()));
        for route in sorted.into_iter().chain(extras) {
            if codes.contains_key(&route) {
                continue;
            }
            let code = u16::try_from(routes.len() + 1)
                .map_err(|_| DictionaryError::TooManyRoutes(routes.len() + 1))?;
            codes.insert(route.clone(), code);
            routes.push(route);
        }
        let json = dict_json(&routes);
        let version = version_of(&json);
        Ok(Dictionary {
            routes,
            codes,
            json,
            version,
        })
    }

    /// The code of `route`, if it has one. No allocation.
    pub fn code(&self, route: &str) -> Option<u16> {
        self.codes.get(route).copied()
    }

    /// The route of `code`, if any (0 and codes past [`len`](Self::len) have none).
    pub fn route(&self, code: u16) -> Option<&str> {
        let index = usize::from(code).checked_sub(1)?;
        self.routes.get(index).map(|r| &**r)
    }

    /// The wire form of `route` for a push: its code if it has one, else the name.
    pub fn compress<'a>(&self, route: &'a str) -> Route<'a> {
        match self.code(route) {
            Some(code) => Route::Code(code),
            None => Route::Name(route),
        }
    }

    /// The route name of a decoded message's route: a name as is, a code looked up (`None` if
    /// unknown: pinus drops such messages), [`Route::None`] gives `None`.
    pub fn resolve<'a>(&'a self, route: Route<'a>) -> Option<&'a str> {
        match route {
            Route::None => None,
            Route::Name(name) => Some(name),
            Route::Code(code) => self.route(code),
        }
    }

    /// The version string sent in the handshake: `base64(md5(json))`, as pinus computes it.
    /// A client that sends this as `sys.dictVersion` is not sent the dictionary again.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The route → code object as JSON text, as `JSON.stringify` writes pinus's `dict`: keys in
    /// JavaScript property order (integer-like keys ascending first, then insertion order,
    /// i.e. code order). This is the `sys.dict` of the handshake reply and the MD5 input of
    /// the version.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The routes with their codes, in code order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u16)> + '_ {
        // Codes are 1..=len ≤ 65535 by construction.
        self.routes.iter().zip(1..=u16::MAX).map(|(r, c)| (&**r, c))
    }
}

impl fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dictionary")
            .field("len", &self.routes.len())
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// `base64(md5(json))`: 16 digest bytes, 24 base64 characters with padding.
fn version_of(json: &str) -> String {
    let digest = Md5::digest(json.as_bytes());
    let mut text = [0u8; 24];
    match base64::engine::general_purpose::STANDARD.encode_slice(digest, &mut text) {
        Ok(n) => String::from_utf8_lossy(text.get(..n).unwrap_or_default()).into_owned(),
        // Unreachable: 24 bytes is exactly the base64 length of 16.
        Err(_) => String::new(),
    }
}

/// JavaScript's default `Array.prototype.sort` order: UTF-16 code units.
fn js_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// True if `key` is a JavaScript array index ("0", or 1..=2^32−2 without leading zeros):
/// such object keys are enumerated first, in ascending numeric order.
fn array_index(key: &str) -> Option<u32> {
    let canonical = key == "0" || (!key.starts_with('0') && !key.is_empty());
    if !canonical || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<u32>().ok().filter(|&n| n != u32::MAX)
}

/// `JSON.stringify` of the route → code object, whose insertion order is code order.
fn dict_json(routes: &[Box<str>]) -> String {
    let mut entries: Vec<(&str, usize)> = routes.iter().map(|r| &**r).zip(1..).collect();
    // Stable: integer-like keys first by value, the others keep code order.
    entries.sort_by_key(|&(route, _)| match array_index(route) {
        Some(n) => (0, n),
        None => (1, 0),
    });
    let mut out = Vec::with_capacity(2 + routes.iter().map(|r| r.len() + 10).sum::<usize>());
    out.push(b'{');
    for (i, (route, code)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_str(route, &mut out);
        out.push(b':');
        out.extend_from_slice(code.to_string().as_bytes());
    }
    out.push(b'}');
    // Only UTF-8 strings and ASCII were written.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_sorted_then_extras() {
        let dict = Dictionary::new(
            [
                "connector.entryHandler.entry",
                "area.playerHandler.move",
                "chat.chatHandler.say",
            ],
            ["onChat", "onAdd"],
        )
        .unwrap();
        let all: Vec<_> = dict.iter().collect();
        assert_eq!(
            all,
            [
                ("area.playerHandler.move", 1),
                ("chat.chatHandler.say", 2),
                ("connector.entryHandler.entry", 3),
                ("onChat", 4),
                ("onAdd", 5),
            ]
        );
        for (route, code) in all {
            assert_eq!(dict.code(route), Some(code));
            assert_eq!(dict.route(code), Some(route));
        }
        assert_eq!(dict.route(0), None);
        assert_eq!(dict.route(6), None);
        assert_eq!(dict.code("nope"), None);
        assert_eq!(dict.resolve(Route::Code(2)), Some("chat.chatHandler.say"));
        assert_eq!(dict.resolve(Route::Code(9)), None);
        assert_eq!(dict.resolve(Route::Name("x.y")), Some("x.y"));
        assert_eq!(dict.resolve(Route::None), None);
    }

    #[test]
    fn version_matches_pinus() {
        // Expected values computed with Node 20:
        // crypto.createHash('md5').update(JSON.stringify(dict)).digest('base64')
        let dict = Dictionary::new(
            [
                "connector.entryHandler.entry",
                "chat.chatHandler.send",
                "chat.chatHandler.say",
            ],
            ["onChat", "onAdd"],
        )
        .unwrap();
        assert_eq!(
            dict.json(),
            r#"{"chat.chatHandler.say":1,"chat.chatHandler.send":2,"connector.entryHandler.entry":3,"onChat":4,"onAdd":5}"#
        );
        assert_eq!(dict.version(), "ecD29GKl8l8M44ksHqa9LA==");

        let empty = Dictionary::new(Vec::<String>::new(), Vec::<String>::new()).unwrap();
        assert_eq!(empty.json(), "{}");
        assert_eq!(empty.version(), "mZFLkyvTelC5g8XnyQrpOw==");
        assert!(empty.is_empty());
    }

    #[test]
    fn javascript_key_order_and_escaping() {
        // Integer-like keys come first in JSON.stringify; "01", "-1" and 2^32-1 are not
        // integer-like. Sorting is by UTF-16 units: U+FF5E sorts after U+1F3AE's surrogates.
        let dict = Dictionary::new(
            ["b.\u{ff5e}", "b.\u{1f3ae}", "a\"q\\\n"],
            ["10", "2", "01", "-1", "4294967295", "4294967294", "z"],
        )
        .unwrap();
        assert_eq!(
            dict.json(),
            "{\"2\":5,\"10\":4,\"4294967294\":9,\"a\\\"q\\\\\\n\":1,\"b.\u{1f3ae}\":2,\
             \"b.\u{ff5e}\":3,\"01\":6,\"-1\":7,\"4294967295\":8,\"z\":10}"
        );
        assert_eq!(dict.version(), "szdwtDutviS9JtT6FeVnZg==");
    }

    #[test]
    fn duplicates_keep_their_first_code() {
        let dict = Dictionary::new(["b.c.d", "a.b.c", "b.c.d"], ["a.b.c", "x"]).unwrap();
        let all: Vec<_> = dict.iter().collect();
        assert_eq!(all, [("a.b.c", 1), ("b.c.d", 2), ("x", 3)]);
    }

    #[test]
    fn at_most_65535_routes() {
        let routes: Vec<String> = (0..MAX_DICTIONARY_LEN).map(|i| format!("r.{i}")).collect();
        let dict = Dictionary::new(&routes, ["r.0"]).unwrap();
        assert_eq!(dict.len(), MAX_DICTIONARY_LEN);
        assert_eq!(
            dict.route(u16::MAX).map(|r| dict.code(r)),
            Some(Some(u16::MAX))
        );
        assert_eq!(
            Dictionary::new(&routes, ["one.more"]).unwrap_err(),
            DictionaryError::TooManyRoutes(65_536)
        );
        assert_eq!(
            DictionaryError::TooManyRoutes(65_536).to_string(),
            "65536 routes exceed the 65535 dictionary codes"
        );
    }
}
