//! The fuzz targets on stable, in plain `cargo test`: every committed corpus file of every
//! target (`fuzz/corpus/<target>/`) replayed through the same entry function the libFuzzer
//! target calls (`gatehouse::__private::fuzz`), then a bounded deterministic random sweep
//! (random bytes, and mutations of the corpus files) through each of them.
//!
//! Crashing inputs the fuzzers found are committed to the corpus once fixed (named
//! `regress-*`), so this file is also their regression test.

use gatehouse::__private::fuzz::TARGETS;
use gatehouse::__private::XorShift;
use gatehouse::protocol::PackageDecoder;
use std::fs;
use std::path::{Path, PathBuf};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// The committed corpus files of `target`, sorted by name.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, data)
        })
        .collect()
}

/// Runs `f(data)`, naming the input if it panics.
fn run(target: &str, f: fn(&[u8]), what: &dyn std::fmt::Display, data: &[u8]) {
    if std::panic::catch_unwind(|| f(data)).is_err() {
        panic!(
            "fuzz target {target} failed on {what} ({} bytes: {data:02x?})",
            data.len()
        );
    }
}

#[test]
fn every_target_is_listed_in_the_fuzz_manifest() {
    let manifest =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml"))
            .expect("fuzz/Cargo.toml");
    // The cluster crate's targets are its own (their corpus replays in its unit tests).
    const CLUSTER_TARGETS: &[&str] = &["cluster_frame"];
    for name in CLUSTER_TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{name} not in fuzz/Cargo.toml"
        );
    }
    // Targets behind a feature this build lacks are in the manifest but not in TARGETS.
    let feature_gated: &[&str] = if cfg!(feature = "tls") {
        &[]
    } else {
        &["tls_front"]
    };
    let bins = manifest.matches("[[bin]]").count();
    assert_eq!(
        bins,
        TARGETS.len() + CLUSTER_TARGETS.len() + feature_gated.len(),
        "fuzz/Cargo.toml and __private::fuzz::TARGETS (+ the cluster targets) differ"
    );
    for (name, _) in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{name} not in fuzz/Cargo.toml"
        );
        let target = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/fuzz_targets")
            .join(format!("{name}.rs"));
        let source =
            fs::read_to_string(&target).unwrap_or_else(|e| panic!("{}: {e}", target.display()));
        assert!(source.contains(&format!("gatehouse::__private::fuzz::{name}(")));
    }
}

#[test]
fn committed_corpus_passes_every_target() {
    let mut total = 0;
    for &(target, f) in TARGETS {
        let files = corpus(target);
        assert!(
            !files.is_empty(),
            "no committed corpus for fuzz target {target}"
        );
        for (path, data) in &files {
            run(target, f, &path.display(), data);
        }
        total += files.len();
    }
    println!(
        "replayed {total} corpus files over {} targets",
        TARGETS.len()
    );
}

/// Inputs per target: raw random bytes (half of them small values, which are mostly valid
/// types, opcodes and lengths), and corpus files with a few bytes flipped, cut or spliced.
const SWEEP: usize = 1500;

#[test]
fn random_sweep_through_every_target() {
    for (n, &(target, f)) in TARGETS.iter().enumerate() {
        let seeds: Vec<Vec<u8>> = corpus(target).into_iter().map(|(_, d)| d).collect();
        let mut rng = XorShift::new(0x9e37_79b9_7f4a_7c15 ^ (n as u64 + 1) << 32);
        for i in 0..SWEEP {
            let input: Vec<u8> = match i % 4 {
                0 => (0..rng.index(96)).map(|_| rng.next_u64() as u8).collect(),
                1 => (0..rng.index(96))
                    .map(|_| (rng.next_u64() % 16) as u8)
                    .collect(),
                _ => {
                    let mut s = rng.pick(&seeds).clone();
                    for _ in 0..=rng.index(4) {
                        if s.is_empty() {
                            break;
                        }
                        let at = rng.index(s.len());
                        match rng.index(3) {
                            0 => s[at] ^= 1 << rng.index(8),
                            1 => s.truncate(at),
                            _ => {
                                let other = rng.pick(&seeds);
                                let take = rng.index(24).min(other.len());
                                let from = rng.index(other.len() - take + 1);
                                s.splice(at..at, other[from..from + take].iter().copied());
                            }
                        }
                    }
                    s
                }
            };
            run(target, f, &format_args!("sweep input {i}"), &input);
        }
    }
}

/// Found by reasoning about `package_stream`'s "never allocates more than the limit" property,
/// which the target now asserts: `PackageDecoder` grew its buffer by plain `Vec` doubling, so
/// fed one byte at a time with a 16-byte body limit (a 20-byte buffer limit) it held 32 bytes.
#[test]
fn regress_package_decoder_never_allocates_past_its_limit() {
    for limit in [0, 1, 3, 16, 100, 4096] {
        let mut decoder = PackageDecoder::new(limit);
        let mut stream = vec![4, (limit >> 16) as u8, (limit >> 8) as u8, limit as u8];
        stream.resize(4 + limit, b'x');
        for (i, byte) in stream.iter().enumerate() {
            decoder.push(std::slice::from_ref(byte));
            assert!(
                decoder.heap_bytes() <= decoder.buffer_limit(),
                "limit {limit}, {} bytes in: {} heap bytes",
                i + 1,
                decoder.heap_bytes()
            );
        }
        assert!(decoder.next_package().expect("valid").is_some());
    }
}
