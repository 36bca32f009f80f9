//! The client library's fuzz target (`fuzz/bodies/client_wire.rs`: the C
//! API against a fake server answering with the seed's bytes), replayed
//! over its committed seed corpus. See `fuzz/README.md`.

#[path = "../../../fuzz/bodies/replay.rs"]
mod replay;

#[path = "../../../fuzz/bodies/client_wire.rs"]
mod client_wire;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus");

#[test]
fn client_wire_seeds() {
    replay::replay(CORPUS, "client_wire", client_wire::run);
}
