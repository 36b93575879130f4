//! WebSocket support for the hybrid port: first-bytes sniffing, the HTTP upgrade, and
//! frame decoding/encoding as pure functions over bytes.
