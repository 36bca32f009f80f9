//! `replica_wire`: see `sqld::fuzzing::replica_wire` for what the bytes are.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sqld::fuzzing::replica_wire(data));
