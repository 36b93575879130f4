#![no_main]
// The property lives in the cluster crate (`frame::fuzz_cluster_frame`), where its unit tests
// replay fuzz/corpus/cluster_frame/ on stable: decode never panics (1 MiB limit), and every
// frame that decodes re-encodes to the identical bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_cluster::frame::fuzz_cluster_frame(data));
