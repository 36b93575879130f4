//! Reading the proto source files as JavaScript's `JSON.parse` sees them, key order included.
//!
//! The parsed form (and so the version hash) depends on the order of the keys in the source
//! files, and this crate's `serde_json` has no `preserve_order` (it would change every `Value`'s
//! key order crate-wide), so the files are scanned here into a small tree that keeps order:
//!
//! * a key given twice keeps its **first position** and its **last value** (as `JSON.parse`);
//! * keys that are JavaScript array indices ("0", "17", below 2^32 − 1, no leading zero) come
//!   first, ascending, as in every JavaScript object; the others keep file order.
//!
//! Only what the parser needs is kept: objects, numbers, and "something else". Strings are
//! unescaped by `serde_json` (so escapes follow the JSON grammar exactly); the rest of the
//! grammar is checked here. Nesting deeper than [`MAX_SOURCE_DEPTH`] is refused.

/// How deep the source files may nest objects and arrays.
pub(super) const MAX_SOURCE_DEPTH: usize = 64;

/// A JSON value, as much of it as the proto parser looks at.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    /// An object: its entries in JavaScript's property order.
    Object(Vec<(String, Node)>),
    /// A number.
    Number(f64),
    /// A string, array, boolean or null.
    Other,
}

/// Parses one JSON text. The error says what is wrong and at which byte.
pub(super) fn parse(text: &str) -> Result<Node, String> {
    let mut p = Scanner {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    let node = p.value(0)?;
    p.skip_ws();
    if p.pos != p.bytes.len() {
        return Err(p.error("unexpected text after the JSON value"));
    }
    Ok(node)
}

/// True if `key` is a JavaScript array index: "0", or 1..=2^32−2 without leading zeros.
/// Such keys come first in a JavaScript object, ascending.
pub(super) fn array_index(key: &str) -> Option<u32> {
    let bytes = key.as_bytes();
    if bytes.is_empty() || bytes.len() > 10 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return None;
    }
    key.parse::<u32>().ok().filter(|&n| n != u32::MAX)
}

/// Puts `entries` (insertion order) into JavaScript property order: array-index keys first,
/// ascending, then the rest in insertion order.
pub(super) fn js_order<V>(entries: &mut [(String, V)]) {
    entries.sort_by_key(|(key, _)| match array_index(key) {
        Some(n) => (0, n),
        None => (1, 0),
    });
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn error(&self, what: &str) -> String {
        format!("{what} at byte {}", self.pos)
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected '{}'", byte as char)))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, String> {
        self.skip_ws();
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(|_| Node::Other),
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.literal("null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a JSON value")),
            None => Err(self.error("unexpected end of the text")),
        }
    }

    fn nest(&self, depth: usize) -> Result<(), String> {
        if depth > MAX_SOURCE_DEPTH {
            return Err(self.error(&format!(
                "objects and arrays nested deeper than {MAX_SOURCE_DEPTH}"
            )));
        }
        Ok(())
    }

    fn object(&mut self, depth: usize) -> Result<Node, String> {
        self.nest(depth)?;
        self.pos += 1; // '{'
        let mut entries: Vec<(String, Node)> = Vec::new();
        let mut seen: ahash::AHashMap<String, usize> = ahash::AHashMap::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Node::Object(entries));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a key string"));
            }
            let key = self.string()?;
            self.expect(b':')?;
            let value = self.value(depth)?;
            match seen.get(&key) {
                // JSON.parse: a repeated key keeps its place and takes the last value.
                Some(&i) => {
                    if let Some(entry) = entries.get_mut(i) {
                        entry.1 = value;
                    }
                }
                None => {
                    seen.insert(key.clone(), entries.len());
                    entries.push((key, value));
                }
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    js_order(&mut entries);
                    return Ok(Node::Object(entries));
                }
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Node, String> {
        self.nest(depth)?;
        self.pos += 1; // '['
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Node::Other);
        }
        loop {
            self.value(depth)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Node::Other);
                }
                _ => return Err(self.error("expected ',' or ']'")),
            }
        }
    }

    /// A string token, unescaped.
    fn string(&mut self) -> Result<String, String> {
        let start = self.pos;
        self.pos += 1; // '"'
        let mut escaped = false;
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 2;
                }
                Some(0x00..=0x1f) => return Err(self.error("control character in a string")),
                Some(_) => self.pos += 1,
            }
        }
        self.pos += 1; // closing '"'
        let token = self
            .text
            .get(start..self.pos)
            .ok_or_else(|| self.error("bad string"))?;
        if !escaped {
            return Ok(token.get(1..token.len() - 1).unwrap_or_default().to_owned());
        }
        serde_json::from_str::<String>(token)
            .map_err(|e| format!("bad string escape in the string starting at byte {start}: {e}"))
    }

    fn literal(&mut self, word: &str) -> Result<Node, String> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word.as_bytes()) {
            self.pos += word.len();
            Ok(Node::Other)
        } else {
            Err(self.error("expected a JSON value"))
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, as a double (huge exponents give
    /// infinity, as in JavaScript).
    fn number(&mut self) -> Result<Node, String> {
        let start = self.pos;
        let digits = |s: &mut Self| {
            let from = s.pos;
            while let Some(b'0'..=b'9') = s.peek() {
                s.pos += 1;
            }
            s.pos - from
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(self.error("bad number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return Err(self.error("bad number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.error("bad number"));
            }
        }
        let token = self.text.get(start..self.pos).unwrap_or_default();
        token
            .parse::<f64>()
            .map(Node::Number)
            .map_err(|_| self.error("bad number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(node: &Node) -> Vec<&str> {
        match node {
            Node::Object(entries) => entries.iter().map(|(k, _)| k.as_str()).collect(),
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn order_as_javascript_objects_have_it() {
        let node = parse(r#"{"b": 1, "a": {"y": [1, {"z": 2}], "x": null}, "10": "s", "2": true, "01": 1, "b": 3}"#)
            .unwrap();
        assert_eq!(keys(&node), ["2", "10", "b", "a", "01"]);
        let Node::Object(entries) = &node else {
            unreachable!()
        };
        // Repeated key: first place, last value.
        assert_eq!(entries[2].1, Node::Number(3.0));
        assert_eq!(keys(&entries[3].1), ["y", "x"]);
    }

    #[test]
    fn strings_numbers_and_errors() {
        let node = parse("\u{feff}{}").unwrap_err();
        assert!(node.contains("byte 0"), "{node}");
        let node = parse(r#" {"a\"b\u00e9": -1.5e3, "é": 0} "#).unwrap();
        let Node::Object(entries) = node else {
            unreachable!()
        };
        assert_eq!(entries[0], ("a\"bé".to_owned(), Node::Number(-1500.0)));
        assert_eq!(entries[1].0, "é");
        for bad in [
            "",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "[1,]",
            "01",
            "1.",
            "-",
            "+1",
            ".5",
            "{\"a\":1} x",
            "\"\u{1}\"",
            "{'a':1}",
            "tru",
            "{\"\\x\":1}",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
        assert_eq!(parse("1e400").unwrap(), Node::Number(f64::INFINITY));
        let deep = "[".repeat(MAX_SOURCE_DEPTH + 1) + &"]".repeat(MAX_SOURCE_DEPTH + 1);
        assert!(parse(&deep).unwrap_err().contains("nested deeper"));
        let ok = "[".repeat(MAX_SOURCE_DEPTH) + &"]".repeat(MAX_SOURCE_DEPTH);
        assert_eq!(parse(&ok).unwrap(), Node::Other);
    }

    #[test]
    fn array_indices() {
        for (k, v) in [
            ("0", Some(0)),
            ("7", Some(7)),
            ("4294967294", Some(4_294_967_294)),
        ] {
            assert_eq!(array_index(k), v);
        }
        for k in [
            "",
            "00",
            "01",
            "-1",
            "4294967295",
            "1e3",
            "a",
            " 1",
            "99999999999",
        ] {
            assert_eq!(array_index(k), None, "{k}");
        }
    }
}
