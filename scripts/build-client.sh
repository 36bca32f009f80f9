#!/usr/bin/env bash
# Builds the sqld client library (a drop-in libsqlite3.so) in release mode
# and puts it, with the soname programs link against (libsqlite3.so.0),
# in one directory for LD_LIBRARY_PATH. Prints that directory.
#   usage: scripts/build-client.sh [OUT_DIR]   (default: target/sqld-client)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/sqld-client}"
cargo build --release -p sqld-client >&2
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$out"
cp "$target/release/libsqlite3.so" "$out/libsqlite3.so"
ln -sf libsqlite3.so "$out/libsqlite3.so.0"
cp sqld/client/include/sqlite3.h "$out/sqlite3.h"
cd "$out" && pwd
