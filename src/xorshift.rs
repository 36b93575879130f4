//! The one pseudo-random generator of the repository's tests, fuzz harnesses and benchmarks:
//! Marsaglia's xorshift64 (shifts 13, 7, 17), reached from outside as
//! `gatehouse::__private::XorShift`.
//!
//! **For tests, fuzzing and benchmarks only; not cryptographic.** A stream is a pure function
//! of its seed, so a failing sweep reproduces from the seed it prints, a fuzz input chunks its
//! stream the same way on every replay, and a benchmark walks its keys in the same order on
//! every run. Nothing in the service itself draws from it (the uid index hashes with ahash's
//! per-process `RandomState`, not with this).
//!
//! Compiled only with the `internals` feature, like the fuzz entry points that use it.
//!
//! # The state
//!
//! One `u64`. Each step is `x ^= x << 13; x ^= x >> 7; x ^= x << 17`, a bijection on the
//! non-zero values with period 2⁶⁴ − 1; zero maps to itself, so the constructors never leave
//! the state at zero: [`XorShift::new`] sets the low bit (seeds `2k` and `2k + 1` give the same
//! stream), and [`XorShift::splitmix`] first scrambles the seed with splitmix64 so that nearby
//! seeds (a stress test's time-based seed, say) give unrelated streams.
//!
//! The range helpers reduce with `%`: slightly biased towards small values when the bound does
//! not divide 2⁶⁴, which no test here can notice, and kept so existing sweeps keep their exact
//! sequences.
//!
//! # Example
//!
//! ```
//! use gatehouse::__private::XorShift;
//!
//! let mut rng = XorShift::new(42);
//! let chunk = 1 + rng.index(16); // a read of 1 to 16 bytes
//! assert!((1..=16).contains(&chunk));
//!
//! let mut order = [10, 20, 30, 40];
//! rng.shuffle(&mut order);
//! order.sort_unstable();
//! assert_eq!(order, [10, 20, 30, 40]);
//!
//! // The same seed, the same stream.
//! assert_eq!(XorShift::new(7).next_u64(), XorShift::new(7).next_u64());
//! ```

/// Marsaglia's xorshift64: a deterministic stream of `u64`s from a seed (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator whose state is `seed | 1` (never zero; `2k` and `2k + 1` give the same
    /// stream).
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed | 1)
    }

    /// A generator whose state is splitmix64's first output for `seed`, with the low bit set:
    /// unrelated streams for neighbouring seeds.
    pub fn splitmix(seed: u64) -> XorShift {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift::new(z ^ (z >> 31))
    }

    /// The next value of the stream (never zero).
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `0..n`; 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// An index in `0..n` (the same draw as [`below`](Self::below)); 0 when `n` is 0.
    pub fn index(&mut self, n: usize) -> usize {
        // usize is at most 64 bits on every target Rust supports, and the result is below `n`.
        self.below(n as u64) as usize
    }

    /// True with probability `percent` in 100 (never for 0, always for 100 or more).
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One element of `items`, each about equally likely.
    ///
    /// # Panics
    ///
    /// If `items` is empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    /// Puts `items` in a random order (Fisher–Yates, from the last element down).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::XorShift;

    /// The first two values from state 1, worked out by hand from the three shifts:
    /// 1 → 0x2001 → 0x2041 → 0x4082_2041, then
    /// 0x4082_2041 → 0x0810_048A_0041 → 0x0800_2483_1441 → 0x1000_4106_0C01_1441.
    #[test]
    fn known_values_from_seed_one() {
        let mut rng = XorShift::new(1);
        assert_eq!(rng.next_u64(), 0x4082_2041);
        assert_eq!(rng.next_u64(), 0x1000_4106_0C01_1441);
    }

    #[test]
    fn seed_low_bit_is_forced() {
        // Zero would be a fixed point; it starts from 1 instead.
        assert_eq!(XorShift::new(0), XorShift::new(1));
        assert_eq!(XorShift::new(0).next_u64(), 0x4082_2041);
        assert_eq!(XorShift::new(0x1234), XorShift::new(0x1235));
    }

    #[test]
    fn splitmix_seeds_with_splitmix64() {
        // splitmix64's first output from state 0 is the published 0xE220_A839_7B1D_CDAF
        // (already odd, so the low bit changes nothing).
        assert_eq!(XorShift::splitmix(0), XorShift::new(0xE220_A839_7B1D_CDAF));
        assert_ne!(XorShift::splitmix(1), XorShift::splitmix(2));
    }

    #[test]
    fn ranges_hold() {
        let mut rng = XorShift::new(0x5eed);
        for n in [1u64, 2, 3, 7, 100, 1 << 40, u64::MAX] {
            for _ in 0..1000 {
                assert!(rng.below(n) < n, "below({n})");
                assert!(rng.index(n as usize) < n as usize, "index({n})");
            }
        }
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.index(0), 0);
        assert!((0..1000).all(|_| !rng.chance(0)));
        assert!((0..1000).all(|_| rng.chance(100)));
    }

    #[test]
    fn chance_is_roughly_its_percentage() {
        let mut rng = XorShift::new(3);
        let hits = (0..10_000).filter(|_| rng.chance(30)).count();
        assert!((2_700..3_300).contains(&hits), "{hits} of 10 000 at 30 %");
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut rng = XorShift::new(11);
        for len in [0, 1, 2, 5, 64, 1000] {
            let mut items: Vec<usize> = (0..len).collect();
            rng.shuffle(&mut items);
            let mut sorted = items.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..len).collect::<Vec<_>>(), "len {len}");
            if len >= 64 {
                assert_ne!(items, sorted, "len {len}: left in order");
            }
        }
    }

    #[test]
    fn pick_reaches_every_element() {
        let mut rng = XorShift::new(99);
        let items = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
        let mut seen = [0u32; 7];
        for _ in 0..7_000 {
            let c = rng.pick(&items);
            seen[items.iter().position(|x| x == c).unwrap()] += 1;
        }
        assert!(seen.iter().all(|&n| n > 700), "{seen:?}");
    }

    #[test]
    fn same_seed_same_stream() {
        let mut a = XorShift::splitmix(77);
        let mut b = a.clone();
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
    }
}
