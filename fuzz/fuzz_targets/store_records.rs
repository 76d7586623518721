//! `cargo fuzz run store_records`: see `commentd::fuzzing::store_records` for what it covers.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| commentd::fuzzing::store_records(data));
