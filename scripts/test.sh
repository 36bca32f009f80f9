#!/usr/bin/env bash
# Runs every test of the project, after installing what they need:
# formatting, clippy, the Rust test suites (unit tests; integration tests
# that start the real sqld binary and drive it with tokio-postgres, psql,
# pgbench and psycopg; the operator's builder, render and mocked-API tests)
# and the offline validation of the operator's rendered manifests.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo test"
cargo test --workspace

if [ -x operator/tests/validate.sh ]; then
    echo "== operator manifests: kubernetes-validate"
    operator/tests/validate.sh
fi
echo "== all tests passed"
