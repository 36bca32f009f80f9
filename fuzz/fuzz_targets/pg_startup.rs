//! `pg_startup`: see `sqld::fuzzing::pg_startup` for what the bytes are.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sqld::fuzzing::pg_startup(data));
