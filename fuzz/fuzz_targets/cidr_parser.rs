#![no_main]
// The target's body and its properties: crates/atk-fuzz.
libfuzzer_sys::fuzz_target!(|data: &[u8]| atk_fuzz::cidr_parser(data));
