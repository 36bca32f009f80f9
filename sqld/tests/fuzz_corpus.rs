//! The seed corpus of each of sqld's fuzz targets, replayed through the
//! entry points the fuzzer drives (`sqld::fuzzing`): the startup and
//! authentication path, every frontend message, bind parameter decoding,
//! and what a malicious primary can send a replica. See `fuzz/README.md`.

#[path = "../../fuzz/bodies/replay.rs"]
mod replay;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus");

#[test]
fn pg_startup_seeds() {
    replay::replay(CORPUS, "pg_startup", sqld::fuzzing::pg_startup);
}

#[test]
fn pg_messages_seeds() {
    replay::replay(CORPUS, "pg_messages", sqld::fuzzing::pg_messages);
}

#[test]
fn bind_params_seeds() {
    replay::replay(CORPUS, "bind_params", sqld::fuzzing::bind_params);
}

#[test]
fn replica_wire_seeds() {
    replay::replay(CORPUS, "replica_wire", sqld::fuzzing::replica_wire);
}
