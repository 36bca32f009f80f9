//! `operator_spec`: see `bodies/operator_spec.rs` for what the bytes are.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../bodies/operator_spec.rs"]
mod body;

fuzz_target!(|data: &[u8]| body::run(data));
