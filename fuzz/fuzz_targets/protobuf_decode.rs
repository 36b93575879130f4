#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse::__private::fuzz::protobuf_decode(data));
