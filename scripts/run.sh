#!/usr/bin/env bash
# Starts sqld with an embedded database in ./sqld-data, listening for
# Postgres clients on 127.0.0.1:5432 (trust authentication: loopback
# development only) and for HTTP (/health, /ready, /metrics) on
# 127.0.0.1:8080. Extra arguments go to sqld, e.g. --pg-listen-addr.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v psql >/dev/null || echo "note: install postgresql-client to get psql" >&2
exec cargo run --release -p sqld -- --dev "$@"
