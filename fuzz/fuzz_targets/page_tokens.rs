//! `cargo fuzz run page_tokens`: see `commentd::fuzzing::page_tokens` for what it covers.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| commentd::fuzzing::page_tokens(data));
