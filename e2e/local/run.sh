#!/usr/bin/env bash
# The local end-to-end tier: the pods `sqld-operator render` produces for
# deploy/examples/sqldcluster.yaml (a primary and two replicas), started as
# real sqld processes with exactly their args and env, then exercised.
# The test itself is operator/tests/local_cluster.rs; this builds sqld and
# runs it. Part of `cargo test --workspace` (scripts/test.sh) as well.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-$(pwd)/target}
cargo build --quiet -p sqld --bin sqld
SQLD_BIN=${SQLD_BIN:-$target/debug/sqld} cargo test -p sqld-operator --test local_cluster -- --nocapture "$@"
