#!/usr/bin/env bash
# Failover rounds with real processes: kill -9 of a primary under 8 writers
# (4 on the primary, 2 through each of 2 replicas) with
# --synchronous-replicas 1, promotion of the most advanced replica, the
# other replica and the old primary following it. Fails if any acknowledged
# commit is lost, a transaction is half there, or a copy differs.
#
#   scripts/failover.sh [ROUNDS]     (default 20; the test suite runs 3)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-20}"
SQLD_FAILOVER_ROUNDS="$rounds" exec cargo test --quiet -p sqld --test failover \
    with_a_synchronous_replica_a_failover_loses_no_acknowledged_commit -- --nocapture
