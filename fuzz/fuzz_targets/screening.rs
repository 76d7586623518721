//! `cargo fuzz run screening`: see `commentd::fuzzing::screening` for what it covers.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| commentd::fuzzing::screening(data));
