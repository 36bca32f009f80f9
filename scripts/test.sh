#!/usr/bin/env bash
# Runs every test of the project, after installing what they need:
# formatting, clippy, the Rust test suites (unit tests; integration tests
# that start the real sqld binary and drive it with tokio-postgres, psql,
# pgbench and psycopg; replication with real primary and replica processes;
# the libsqlite3 client library driven by a C program, Python's sqlite3
# module and the sqlite3 shell against real servers;
# the operator's builder, render, mocked-API and local end-to-end tests),
# the shipping checks (Dockerfiles, Helm charts, manifests validated
# offline, Prometheus rules, metric names) and the benchmark harness in
# smoke mode.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo test"
cargo test --workspace

echo "== shipping: images, charts, manifests, monitoring, local end-to-end tier"
scripts/check-shipping.sh

echo "== chaos: 3 rounds (kill -9 of the primary; a replica killed, a replica stopped, a full disk)"
scripts/chaos.sh --rounds 3

echo "== benchmark harness, smoke mode (never fails on a ratio)"
e2e/bench/run.sh --smoke

echo "== all tests passed"
