//! [`front`]: does a connection on a TLS-enabled port start with a TLS handshake?

/// What the first byte of a connection says about TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    /// A TLS record of type handshake (`0x16`, the ClientHello's record): run TLS, then sniff
    /// the plaintext for raw TCP or WebSocket as on a plain connection.
    Tls,
    /// Anything else: a pomelo package (type `0x01..=0x05`) or an HTTP request (a method
    /// letter) in the clear. Served as plain TCP/WebSocket if the port allows it, closed on a
    /// TLS-only port.
    Plain,
    /// Nothing received yet.
    NeedMore,
}

/// The TLS record content type `handshake`: every TLS version's first client record.
pub const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Classifies a connection by the bytes it has sent so far (from its very first byte).
///
/// One byte decides: `0x16` opens every TLS ClientHello (TLS 1.0 to 1.3, SSLv2-compatible
/// hellos are not supported by rustls either), and it is neither a pomelo package type
/// (`0x01..=0x05`) nor the first letter of an HTTP method, so the three never collide. The
/// verdict never changes as more bytes arrive. Pure, allocation-free, never panics.
///
/// # Examples
///
/// ```
/// # use gatehouse::__private::tls::{front, Front};
/// assert_eq!(front(&[0x16, 0x03, 0x01]), Front::Tls);
/// assert_eq!(front(b"GET / HTTP/1.1\r\n"), Front::Plain);
/// assert_eq!(front(&[0x01, 0x00, 0x00, 0x02]), Front::Plain); // a pomelo HANDSHAKE
/// assert_eq!(front(&[]), Front::NeedMore);
/// ```
pub fn front(first: &[u8]) -> Front {
    match first.first() {
        None => Front::NeedMore,
        Some(&TLS_HANDSHAKE_RECORD) => Front::Tls,
        Some(_) => Front::Plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::sniff::{sniff, Sniff};

    #[test]
    fn only_the_handshake_record_type_is_tls() {
        for byte in 0..=255u8 {
            let expected = if byte == 0x16 {
                Front::Tls
            } else {
                Front::Plain
            };
            assert_eq!(front(&[byte]), expected, "{byte:#04x}");
            assert_eq!(front(&[byte, 0x03, 0x03, 0, 5]), expected, "{byte:#04x}");
        }
        assert_eq!(front(&[]), Front::NeedMore);
    }

    #[test]
    fn pomelo_packages_and_http_requests_are_plain() {
        for kind in 1..=5u8 {
            assert_eq!(front(&[kind, 0, 0, 0]), Front::Plain);
        }
        for request in ["GET / HTTP/1.1\r\n", "POST /", "HEAD ", "PUT ", "DELETE "] {
            assert_eq!(front(request.as_bytes()), Front::Plain, "{request}");
        }
    }

    #[test]
    fn a_client_hello_is_never_taken_for_tcp_or_websocket_by_the_plain_sniffer() {
        // The plain sniffer would call a ClientHello raw TCP (and the package decoder would
        // refuse it): the TLS front must look first.
        assert_eq!(sniff(&[0x16, 0x03, 0x01, 0x00, 0xc8]), Sniff::Tcp);
        assert_eq!(front(&[0x16, 0x03, 0x01, 0x00, 0xc8]), Front::Tls);
    }
}
