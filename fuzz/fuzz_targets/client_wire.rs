//! `client_wire`: see `bodies/client_wire.rs` for what the bytes are.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../bodies/client_wire.rs"]
mod body;

fuzz_target!(|data: &[u8]| body::run(data));
