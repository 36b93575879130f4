//! [`sniff`]: is a new connection raw TCP (pomelo packages) or WebSocket (an HTTP upgrade)?

/// What the first bytes of a connection say about its transport.
///
/// The hybrid port serves pomelo's TCP framing and WebSocket on one port, as pomelo's switcher
/// does (spec §5.7): an HTTP request starts with a method name, a pomelo package with a type
/// byte in `0x01..=0x05`, and the two never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// Raw TCP: hand the bytes, unconsumed, to the pomelo package decoder.
    Tcp,
    /// An HTTP request: hand the bytes, unconsumed, to the WebSocket upgrade
    /// ([`UpgradeParser`](super::handshake::UpgradeParser)).
    WebSocket,
    /// Too few bytes to tell (they are a proper prefix of a method and its space, like `GE` or
    /// nothing at all): read more, then sniff the whole prefix again.
    NeedMore,
}

/// The request lines that make a connection WebSocket: pinus's switcher list, each method with
/// its space.
const METHODS: [&[u8]; 5] = [b"GET ", b"POST ", b"DELETE ", b"PUT ", b"HEAD "];

/// The longest method prefix: a connection never needs more bytes than this to be classified.
#[cfg(feature = "internals")] // only the fuzz harnesses and tests use it
pub const SNIFF_MAX: usize = 7;

/// Classifies a connection by the bytes it has sent so far (from its very first byte).
///
/// WebSocket iff `first` starts with `GET `, `POST `, `DELETE `, `PUT ` or `HEAD `; raw TCP as
/// soon as the bytes can no longer become one of those, which for a pomelo package (type byte
/// `0x01..=0x05`) is its first byte. Only the upgrade itself must be a `GET`: the other methods
/// are routed to WebSocket, as in pinus, and then refused there with an HTTP error.
///
/// Two pinus bugs are fixed (spec §5.7): `DELETE` is recognised (pinus compares 5 bytes and
/// pomelo 4, so it never matched), and a first chunk shorter than its method (`GE`) answers
/// [`Sniff::NeedMore`] instead of being taken for TCP. The verdict never changes once given:
/// sniffing a longer prefix of the same stream returns the same `Tcp`/`WebSocket`, and
/// seven bytes (`SNIFF_MAX`, the longest method) always decide.
///
/// Pure, allocation-free, never panics.
///
/// # Examples
///
/// ```
/// # use gatehouse::__private::ws::{sniff, Sniff};
/// assert_eq!(sniff(b"GET /chat HTTP/1.1\r\n"), Sniff::WebSocket);
/// assert_eq!(sniff(b"GE"), Sniff::NeedMore);
/// assert_eq!(sniff(&[0x01, 0x00, 0x00, 0x02]), Sniff::Tcp); // a pomelo HANDSHAKE package
/// ```
pub fn sniff(first: &[u8]) -> Sniff {
    match first.first() {
        None => return Sniff::NeedMore,
        // pomelo package types HANDSHAKE..=KICK: decided on the first byte.
        Some(0x01..=0x05) => return Sniff::Tcp,
        Some(_) => {}
    }
    let mut prefix_of_method = false;
    for method in METHODS {
        if first.starts_with(method) {
            return Sniff::WebSocket;
        }
        // `first` is shorter than `method` here, or it would have matched above.
        prefix_of_method |= method.starts_with(first);
    }
    if prefix_of_method {
        Sniff::NeedMore
    } else {
        Sniff::Tcp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_with_its_space_is_websocket() {
        for m in ["GET ", "POST ", "DELETE ", "PUT ", "HEAD "] {
            let req = format!("{m}/ HTTP/1.1\r\n");
            assert_eq!(sniff(req.as_bytes()), Sniff::WebSocket, "{m}");
            assert_eq!(sniff(m.as_bytes()), Sniff::WebSocket, "{m}");
        }
    }

    #[test]
    fn delete_matches_unlike_pinus() {
        assert_eq!(sniff(b"DELETE /x HTTP/1.1\r\n"), Sniff::WebSocket);
        assert_eq!(sniff(b"DELET"), Sniff::NeedMore);
        assert_eq!(sniff(b"DELETE"), Sniff::NeedMore);
    }

    #[test]
    fn short_first_chunks_wait_for_more() {
        for p in [
            "", "G", "GE", "GET", "P", "PO", "PU", "PUT", "H", "HEA", "HEAD", "D", "POST",
        ] {
            assert_eq!(sniff(p.as_bytes()), Sniff::NeedMore, "{p:?}");
        }
    }

    #[test]
    fn pomelo_packages_and_other_bytes_are_tcp() {
        for t in 1u8..=5 {
            assert_eq!(sniff(&[t]), Sniff::Tcp);
            assert_eq!(sniff(&[t, 0, 0, 0]), Sniff::Tcp);
        }
        for other in [
            &b"GETX"[..],
            b"get ",
            b"GET\t",
            b"OPTIONS ",
            b"X",
            b"\0",
            b"\x16\x03\x01",
        ] {
            assert_eq!(sniff(other), Sniff::Tcp, "{other:?}");
        }
    }

    #[test]
    fn verdict_is_stable_and_decided_within_sniff_max() {
        let inputs: [&[u8]; 6] = [
            b"GET / HTTP/1.1",
            b"DELETE / HTTP/1.1",
            b"\x01\x00\x00\x10{}",
            b"GEX",
            b"POSTER",
            b"HEAD / HTTP/1.0",
        ];
        for input in inputs {
            let mut verdict = None;
            for n in 0..=input.len() {
                match (sniff(&input[..n]), verdict) {
                    (Sniff::NeedMore, None) => assert!(n < SNIFF_MAX, "{input:?}"),
                    (Sniff::NeedMore, Some(v)) => panic!("{input:?}: {v:?} then NeedMore"),
                    (s, None) => verdict = Some(s),
                    (s, Some(v)) => assert_eq!(s, v, "{input:?} at {n}"),
                }
            }
        }
    }
}
