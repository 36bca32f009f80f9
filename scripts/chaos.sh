#!/usr/bin/env bash
# Chaos rounds against real sqld processes on 127.0.0.1: a primary and 2
# replicas, 8 clients writing through all of them, kill -9 of the primary
# at a random moment in every round, plus a variant per round (a replica
# killed, a replica stopped with SIGSTOP, the primary's disk full). Checks
# that no acknowledged commit is lost, no transaction is half visible and
# every replica converges; exits non-zero otherwise.
#
#   scripts/chaos.sh [--rounds N] [--variants disk-full,replica-stop,...] [--seed S]
#
# Every option: scripts/chaos.sh --help (e2e/chaos/src/main.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet -p sqld -p sqld-chaos
exec target/debug/sqld-chaos --sqld target/debug/sqld "$@"
