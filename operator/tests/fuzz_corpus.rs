//! The operator's fuzz target (`fuzz/bodies/operator_spec.rs`: arbitrary
//! YAML through `render`), replayed over its committed seed corpus: the
//! shipped examples and malformed specs. See `fuzz/README.md`.

#[path = "../../fuzz/bodies/replay.rs"]
mod replay;

#[path = "../../fuzz/bodies/operator_spec.rs"]
mod operator_spec;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus");

#[test]
fn operator_spec_seeds() {
    replay::replay(CORPUS, "operator_spec", operator_spec::run);
}
