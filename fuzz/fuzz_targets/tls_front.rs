#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse::__private::fuzz::tls_front(data));
