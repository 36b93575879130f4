//! JSON string escaping exactly as JavaScript's `JSON.stringify` does it.
//!
//! The server-built JSON texts (KICK body, handshake reply, the dictionary whose MD5 is the
//! dictionary version) are written by hand, so their bytes match what pinus produces: `"` and
//! `\` are escaped, the control characters U+0008, U+0009, U+000A, U+000C and U+000D use their
//! short forms (`\b \t \n \f \r`), every other control character below U+0020 is written
//! `\u00xx` with lowercase hex digits, and everything else (including U+007F, U+2028 and U+2029)
//! is copied as UTF-8. A Rust `&str` holds no lone surrogates, the one case where
//! `JSON.stringify` writes `\udxxx`. serde_json escapes strings the same way.

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The escape for one byte, or `None` when the byte is copied as it is.
fn escape(byte: u8) -> Option<&'static [u8]> {
    Some(match byte {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        0x08 => b"\\b",
        b'\t' => b"\\t",
        b'\n' => b"\\n",
        0x0c => b"\\f",
        b'\r' => b"\\r",
        0x00..=0x1f => b"\\u00",
        _ => return None,
    })
}

/// Appends `s` to `out` as a quoted JSON string.
pub(crate) fn write_str(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut run = 0; // start of the bytes not yet copied
    for (i, &b) in bytes.iter().enumerate() {
        if let Some(esc) = escape(b) {
            out.extend_from_slice(bytes.get(run..i).unwrap_or_default());
            out.extend_from_slice(esc);
            if esc == b"\\u00" {
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            run = i + 1;
        }
    }
    out.extend_from_slice(bytes.get(run..).unwrap_or_default());
    out.push(b'"');
}

/// The number of bytes [`write_str`] appends for `s`.
pub(crate) fn str_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match escape(b) {
            Some(b"\\u00") => 6,
            Some(esc) => esc.len(),
            None => 1,
        })
        .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(s: &str) -> String {
        let mut out = Vec::new();
        write_str(s, &mut out);
        assert_eq!(out.len(), str_len(s), "str_len disagrees for {s:?}");
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plain_text_is_copied() {
        assert_eq!(quoted(""), r#""""#);
        assert_eq!(quoted("bye"), r#""bye""#);
        assert_eq!(quoted("héllo ☃ 🎮"), "\"héllo ☃ 🎮\"");
    }

    #[test]
    fn escapes_match_json_stringify() {
        // Expected texts from Node 20: JSON.stringify("a\"b\\c\b\f\n\r\t\u0000\u001f\u007f\u2028")
        assert_eq!(
            quoted("a\"b\\c\u{8}\u{c}\n\r\t\u{0}\u{1f}\u{7f}\u{2028}"),
            "\"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0000\\u001f\u{7f}\u{2028}\""
        );
    }

    #[test]
    fn agrees_with_serde_json_on_every_ascii_byte() {
        for b in 0u8..=0x7f {
            let s = format!("x{}y", b as char);
            assert_eq!(
                quoted(&s),
                serde_json::to_string(&s).unwrap(),
                "byte {b:#04x}"
            );
        }
    }
}
