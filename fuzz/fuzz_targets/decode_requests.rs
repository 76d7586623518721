//! `cargo fuzz run decode_requests`: see `commentd::fuzzing::decode_requests` for what it covers.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| commentd::fuzzing::decode_requests(data));
