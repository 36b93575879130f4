//! pomelo's wire protocol as pure functions over bytes (no I/O, no panics on any input).
