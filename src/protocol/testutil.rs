//! Helpers shared by the protocol unit tests.

pub(crate) use crate::xorshift::XorShift;

/// Bytes from hex text; spaces and `|` are ignored (`"04 000003 | 06"`).
pub(crate) fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    assert!(digits.len().is_multiple_of(2), "odd hex: {text}");
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}
