//! `bind_params`: see `sqld::fuzzing::bind_params` for what the bytes are.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sqld::fuzzing::bind_params(data));
