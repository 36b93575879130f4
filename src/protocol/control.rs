//! The control packages: heartbeat, handshake ack and kick (spec §5.3–5.5).

use super::json;
use super::package::{header, PackageType, HEADER_LEN, MAX_BODY_LEN};
use super::PackageError;

/// A whole HEARTBEAT package (`03 00 00 00`). The server sends one right after the handshake
/// ack and echoes each client heartbeat with it.
pub const HEARTBEAT_PACKAGE: [u8; HEADER_LEN] = [PackageType::Heartbeat as u8, 0, 0, 0];

/// A whole HANDSHAKE_ACK package (`02 00 00 00`), sent by the client after a 200 handshake
/// reply.
pub const HANDSHAKE_ACK_PACKAGE: [u8; HEADER_LEN] = [PackageType::HandshakeAck as u8, 0, 0, 0];

/// Length of the KICK body for `reason`: `{"reason":"…"}` with the reason JSON-escaped.
fn kick_body_len(reason: &str) -> usize {
    br#"{"reason":}"#.len() + json::str_len(reason)
}

/// Appends the KICK body `{"reason":"<reason>"}` to `out`, escaping the reason as
/// `JSON.stringify` does (quotes, backslashes, control characters).
///
/// # Examples
///
/// ```
/// use gatehouse::protocol::encode_kick_body;
///
/// let mut out = Vec::new();
/// encode_kick_body("say \"bye\"", &mut out);
/// assert_eq!(out, br#"{"reason":"say \"bye\""}"#);
/// ```
pub fn encode_kick_body(reason: &str, out: &mut Vec<u8>) {
    out.reserve_exact(kick_body_len(reason));
    out.extend_from_slice(br#"{"reason":"#);
    json::write_str(reason, out);
    out.push(b'}');
}

/// Appends a whole KICK package with the body `{"reason":"<reason>"}`, in one exact reservation.
///
/// # Errors
///
/// [`PackageError::TooLarge`] if the escaped body exceeds the 24-bit package limit; `out` is
/// unchanged.
///
/// # Examples
///
/// ```
/// use gatehouse::protocol::encode_kick;
///
/// let mut out = Vec::new();
/// encode_kick("bye", &mut out).unwrap();
/// assert_eq!(out, b"\x05\x00\x00\x10{\"reason\":\"bye\"}");
/// ```
pub fn encode_kick(reason: &str, out: &mut Vec<u8>) -> Result<(), PackageError> {
    let len = kick_body_len(reason);
    if len > MAX_BODY_LEN {
        return Err(PackageError::TooLarge {
            len,
            max: MAX_BODY_LEN,
        });
    }
    out.reserve_exact(HEADER_LEN + len);
    out.extend_from_slice(&header(PackageType::Kick, len));
    encode_kick_body(reason, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::decode_package;
    use crate::protocol::testutil::hex;

    #[test]
    fn observed_heartbeat_and_ack() {
        assert_eq!(HEARTBEAT_PACKAGE.to_vec(), hex("03 000000"));
        assert_eq!(HANDSHAKE_ACK_PACKAGE.to_vec(), hex("02 000000"));
        let (p, n) = decode_package(&HEARTBEAT_PACKAGE, 0).unwrap().unwrap();
        assert_eq!((p.kind, p.body, n), (PackageType::Heartbeat, &[][..], 4));
        let (p, _) = decode_package(&HANDSHAKE_ACK_PACKAGE, 0).unwrap().unwrap();
        assert_eq!(p.kind, PackageType::HandshakeAck);
    }

    #[test]
    fn observed_kick() {
        let wire = [&hex("05 000010")[..], br#"{"reason":"bye"}"#].concat();
        let mut out = Vec::new();
        encode_kick("bye", &mut out).unwrap();
        assert_eq!(out, wire);
        assert_eq!(out.capacity(), wire.len(), "exact capacity");
        let (p, _) = decode_package(&out, 64).unwrap().unwrap();
        assert_eq!((p.kind, p.body), (PackageType::Kick, &wire[4..]));
    }

    #[test]
    fn reasons_are_escaped_and_parse_back() {
        for reason in [
            "",
            "logged in elsewhere",
            "a\"b\\c\n\t\u{1}",
            "中文 🎮",
            "</script>",
        ] {
            let mut out = Vec::new();
            encode_kick(reason, &mut out).unwrap();
            assert_eq!(out.len(), HEADER_LEN + kick_body_len(reason));
            let v: serde_json::Value = serde_json::from_slice(&out[HEADER_LEN..]).unwrap();
            assert_eq!(v, serde_json::json!({ "reason": reason }));
            // Same bytes as JSON.stringify({reason}) (serde_json escapes identically).
            let expected = serde_json::to_string(&serde_json::json!({ "reason": reason })).unwrap();
            assert_eq!(&out[HEADER_LEN..], expected.as_bytes());
        }
    }

    #[test]
    fn oversized_reason_is_refused() {
        let reason = "\u{1}".repeat(MAX_BODY_LEN / 6);
        let mut out = vec![7];
        assert!(matches!(
            encode_kick(&reason, &mut out),
            Err(PackageError::TooLarge { .. })
        ));
        assert_eq!(out, [7]);
    }
}
