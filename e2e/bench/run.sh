#!/usr/bin/env bash
# sqld beside PostgreSQL on this machine, and sqld's replication: installs
# what is missing, builds sqld and the no-op responder, then runs bench.py.
#
#   e2e/bench/run.sh                  full run (3 rounds x 10 s per workload, then replication)
#   e2e/bench/run.sh --smoke          a few seconds per workload, one round (CI)
#   e2e/bench/run.sh --profile NAME   one workload against sqld under perf
#
# Other options (--duration S, --rounds N, --keep) go to bench.py. Exits
# non-zero only when the harness itself breaks (a server that does not
# start, a pgbench run that fails), never because of a ratio.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

profiling=false
for arg in "$@"; do
    [[ "$arg" == "--profile" ]] && profiling=true
done

as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

pg_bin_dir() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

# --- what the harness needs -------------------------------------------------
packages=()
command -v pgbench >/dev/null && command -v psql >/dev/null || packages+=(postgresql-client)
[[ -n "$(pg_bin_dir)" && -x "$(pg_bin_dir)/postgres" ]] || packages+=(postgresql)
if $profiling && ! command -v perf >/dev/null; then packages+=(linux-perf); fi
if ((${#packages[@]})); then
    echo "installing ${packages[*]}"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${packages[@]}"
fi
PG_BIN_DIR="$(pg_bin_dir)"
[[ -x "$PG_BIN_DIR/initdb" ]] || { echo "no PostgreSQL server binaries found" >&2; exit 1; }
# psycopg 3 drives the replication measurements. Debian's package serves the
# system python3; when python3 is another interpreter (pyenv, a venv), pip.
if ! python3 -c "import psycopg" 2>/dev/null; then
    echo "installing psycopg"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-psycopg || true
    python3 -c "import psycopg" 2>/dev/null || python3 -m pip install -q "psycopg[binary]"
fi

echo "building sqld (release) and the no-op responder"
cargo build --release -q -p sqld --manifest-path "$REPO/Cargo.toml"
cargo build --release -q --manifest-path "$HERE/noop/Cargo.toml"
SQLD_BIN="$REPO/target/release/sqld"
NOOP_BIN="$HERE/noop/target/release/pg-noop"

# --- every process started below is stopped on the way out -----------------
PID_FILE="$(mktemp -t sqld-bench-pids.XXXXXX)"
cleanup() {
    local pid
    # bench.py stops its own children; this catches what a killed bench.py
    # could not.
    while read -r pid; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done < "$PID_FILE"
    rm -f "$PID_FILE"
}
trap cleanup EXIT

python3 "$HERE/bench.py" \
    --sqld "$SQLD_BIN" --noop "$NOOP_BIN" --pg-bin-dir "$PG_BIN_DIR" \
    --pid-file "$PID_FILE" "$@"
