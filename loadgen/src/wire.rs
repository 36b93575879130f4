//! What the clients say on the wire besides the codec: the handshake body, the gate's routes,
//! and the few byte-level looks into small JSON bodies the hot path needs (no JSON parse per
//! push or echo response).

/// The HANDSHAKE package's body every client sends.
pub const HANDSHAKE_BODY: &[u8] = br#"{"sys":{"type":"loadgen","version":"0.1.0"},"user":{}}"#;
/// Binds the session to uid `{"uid":…}`.
pub const ENTRY: &str = "connector.entryHandler.entry";
/// Answers `{"t":…}` with the same `t`.
pub const ECHO: &str = "connector.entryHandler.echo";
/// Pushes `m` rounds of `size` bytes to every bound uid.
pub const BLAST: &str = "connector.entryHandler.blast";
/// The server's session count, bound uids and RSS.
pub const STATS: &str = "connector.entryHandler.stats";
/// The server's default `max_message_id`.
pub const MAX_ID: u32 = i32::MAX as u32;

/// The first position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The unsigned integer after `key` (e.g. `"t":`) in a small JSON body.
pub fn find_u64(hay: &[u8], key: &[u8]) -> Option<u64> {
    let mut i = find(hay, key)? + key.len();
    while hay.get(i) == Some(&b' ') {
        i += 1;
    }
    let mut v: u64 = 0;
    let start = i;
    while let Some(d) = hay.get(i).filter(|d| d.is_ascii_digit()) {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        i += 1;
    }
    (i > start).then_some(v)
}

/// Whether a response body says `"code":200`.
pub fn code_200(body: &[u8]) -> bool {
    find(body, b"\"code\":200").is_some()
}

/// A body for an error message: the first 200 bytes, lossily decoded.
pub fn lossy(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    if body.len() > 200 {
        s + "…"
    } else {
        s
    }
}

// === the client threads ======================================================================

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_u64_reads_the_number_after_the_key() {
        assert_eq!(
            find_u64(br#"{"code":200,"t":12345}"#, b"\"t\":"),
            Some(12345)
        );
        assert_eq!(find_u64(br#"{"t": 7}"#, b"\"t\":"), Some(7));
        assert_eq!(find_u64(br#"{"t":"x"}"#, b"\"t\":"), None);
        assert_eq!(find_u64(br#"{"u":1}"#, b"\"t\":"), None);
        // Overflow is no number, not a wrap.
        assert_eq!(
            find_u64(br#"{"t":99999999999999999999999}"#, b"\"t\":"),
            None
        );
    }

    #[test]
    fn code_200_and_lossy() {
        assert!(code_200(br#"{"code":200}"#) && !code_200(br#"{"code":500}"#));
        let long = vec![b'a'; 300];
        assert_eq!(lossy(&long).chars().count(), 201);
    }
}
