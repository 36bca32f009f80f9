//! `pg_messages`: see `sqld::fuzzing::pg_messages` for what the bytes are.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sqld::fuzzing::pg_messages(data));
