//! The wire primitives of the dialect: LEB128 varints, zigzag, little-endian fixed widths.
//!
//! Varints are at most 10 bytes (64 bits). The reference decoders accept any length and sum
//! the groups in floating point; here a varint that does not fit 64 bits is an error, and an
//! over-long but in-range encoding (`80 00`) is accepted as they accept it.

use super::ProtoDecodeError;

/// The most bytes a 64-bit varint takes.
pub(super) const MAX_VARINT_LEN: usize = 10;

/// The bytes of `value` as a varint, and how many of them are used.
pub(super) fn varint(mut value: u64) -> ([u8; MAX_VARINT_LEN], usize) {
    let mut bytes = [0u8; MAX_VARINT_LEN];
    let mut n = 0;
    for slot in bytes.iter_mut() {
        n += 1;
        if value < 0x80 {
            *slot = value as u8;
            break;
        }
        *slot = (value as u8 & 0x7f) | 0x80;
        value >>= 7;
    }
    (bytes, n)
}

/// The number of bytes [`varint`] writes for `value`.
pub(super) fn varint_len(value: u64) -> usize {
    // 1 + floor(log2(value) / 7), with 0 taking one byte.
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Zigzag, as `sInt32` (and, in this dialect, `int32`) is written: 0, -1, 1, -2 → 0, 1, 2, 3.
pub(super) fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// The inverse of [`zigzag`].
pub(super) fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// A cursor over one message's bytes.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    /// True when every byte has been read.
    pub(super) fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// Bytes not yet read.
    pub(super) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// Reads a varint of at most 64 bits.
    pub(super) fn varint(&mut self) -> Result<u64, ProtoDecodeError> {
        let mut value = 0u64;
        for i in 0..MAX_VARINT_LEN {
            let byte = *self
                .bytes
                .get(self.pos)
                .ok_or(ProtoDecodeError::Truncated)?;
            self.pos += 1;
            let group = u64::from(byte & 0x7f);
            if i == MAX_VARINT_LEN - 1 && group > 1 {
                return Err(ProtoDecodeError::BadVarint);
            }
            value |= group << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(ProtoDecodeError::BadVarint)
    }

    /// The next `n` bytes.
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoDecodeError> {
        let end = self.pos.checked_add(n).ok_or(ProtoDecodeError::Truncated)?;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or(ProtoDecodeError::Truncated)?;
        self.pos = end;
        Ok(slice)
    }

    /// The next `N` bytes as an array (for the fixed-width numbers).
    pub(super) fn fixed<const N: usize>(&mut self) -> Result<[u8; N], ProtoDecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(value: u64) -> Vec<u8> {
        let (b, n) = varint(value);
        b[..n].to_vec()
    }

    #[test]
    fn varints_round_trip_at_every_width() {
        for shift in 0..64 {
            for value in [1u64 << shift, (1u64 << shift) - 1, (1u64 << shift) + 1] {
                let b = bytes(value);
                assert_eq!(b.len(), varint_len(value), "{value}");
                let mut r = Reader::new(&b);
                assert_eq!(r.varint().unwrap(), value);
                assert!(r.is_empty());
            }
        }
        assert_eq!(bytes(u64::MAX).len(), 10);
        assert_eq!(bytes(0), [0]);
        assert_eq!(bytes(300), [0xac, 0x02]);
        assert_eq!(bytes(3_000_000_001), [0x81, 0xbc, 0xc1, 0x96, 0x0b]);
    }

    #[test]
    fn bad_varints() {
        assert_eq!(
            Reader::new(&[0x80]).varint(),
            Err(ProtoDecodeError::Truncated)
        );
        assert_eq!(Reader::new(&[]).varint(), Err(ProtoDecodeError::Truncated));
        // 2^64 does not fit; eleven bytes never do.
        let over = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02];
        assert_eq!(
            Reader::new(&over).varint(),
            Err(ProtoDecodeError::BadVarint)
        );
        let long = [0xff; 11];
        assert_eq!(
            Reader::new(&long).varint(),
            Err(ProtoDecodeError::BadVarint)
        );
        // Over-long but in range: accepted, as the JavaScript decoders accept it.
        assert_eq!(Reader::new(&[0x81, 0x00]).varint(), Ok(1));
    }

    #[test]
    fn zigzag_matches_the_dialect() {
        for (v, z) in [
            (0i64, 0u64),
            (-1, 1),
            (1, 2),
            (-2, 3),
            (-7, 13),
            (i64::MIN, u64::MAX),
        ] {
            assert_eq!(zigzag(v), z);
            assert_eq!(unzigzag(z), v);
        }
        assert_eq!(zigzag(i64::MAX), u64::MAX - 1);
    }
}
