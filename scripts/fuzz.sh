#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/) for SECONDS each (default 60) and
# prints, per target, the executions, the time and the findings: each
# distinct panic location, with one input that reaches it.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# libFuzzer runs in fork mode and goes on after a crash, so one known
# finding does not hide the others and every target gets its full time.
# New inputs go to fuzz/target/work/<target>/ and crashing inputs to
# fuzz/artifacts/<target>/ (both ignored by git); the committed seed
# corpus (fuzz/corpus/<target>/) is only read. Needs cargo-fuzz
# (installed if missing); stable Rust works with RUSTC_BOOTSTRAP=1, which
# this script sets.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

SECS=${1:-60}
shift || true
ALL="pg_startup pg_messages bind_params replica_wire client_wire operator_spec"
TARGETS=${*:-$ALL}
export RUSTC_BOOTSTRAP=1
# -O with debug assertions: overflow checks on, as arithmetic on
# network input must be checked. No sanitizer: the code under test is
# Rust (a panic is the finding) plus SQLite's C, which ASan would not
# instrument without its own build flags.
BUILD=(-O -a -s none)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
cargo fuzz build "${BUILD[@]}"
BIN=target/x86_64-unknown-linux-gnu/release

summary=()
for t in $TARGETS; do
    mkdir -p "target/work/$t" "artifacts/$t"
    log="target/work/$t.log"
    echo "== $t: ${SECS}s"
    # Bounded by -max_total_time; each input by -timeout and -rss_limit_mb.
    # cargo-fuzz replays the last crash after the run: bounded too.
    timeout $((SECS + 300)) cargo fuzz run "${BUILD[@]}" "$t" "target/work/$t" "corpus/$t" -- \
        -max_total_time="$SECS" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 \
        -ignore_ooms=1 -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || true
    # Fork mode's progress lines: "#N: cov: .. exec/s: .. oom/timeout/crash: a/b/c time: Ts".
    last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -n 1 || true)
    execs=$(sed -nE 's/^#([0-9]+):.*/\1/p' <<<"$last")
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    otc=$(sed -nE 's/.*oom\/timeout\/crash: ([0-9\/]+).*/\1/p' <<<"$last")
    took=$(sed -nE 's/.* time: ([0-9]+)s.*/\1/p' <<<"$last")
    # One line per distinct panic location (or abort kind) among the
    # artifacts, each re-run once to read its message.
    declare -A seen=()
    findings=()
    # Re-running with a backtrace takes a moment: the newest 40 suffice
    # to name the findings (fork mode writes one file per crash, mostly
    # the same few over and over).
    while IFS= read -r a; do
        name=${a##*/}
        out=$(RUST_BACKTRACE=1 timeout 20 "$BIN/$t" "$a" 2>&1 || true)
        # Where: the first backtrace frame outside std, bytes and the
        # fuzzing glue, i.e. the decoder that panicked.
        where=$(awk '/panicked at/ {p=1} p && /^ +at / && !/\/rustc\/|bytes-[0-9]|libfuzzer|fuzzing\.rs|bodies\/|fuzz_targets\// {print $2; exit}' <<<"$out")
        if [ -n "$where" ]; then
            fn=$(grep -B1 -F "at $where" <<<"$out" | head -n 1 | sed -E 's/^ *[0-9]+: //')
            caller=$(grep -A2 -F "at $where" <<<"$out" | sed -n 2p | sed -E 's/^ *[0-9]+: //')
            short=$(sed -E 's#.*/index\.crates\.io-[0-9a-f]+/##; s#.*/(sqld|operator)/src/#\1/src/#' <<<"$where")
            where="panic in $fn ($short), called from $caller"
        fi
        if [ -z "$where" ]; then
            case "$name" in
                oom-*) where="out of memory (> 2048 MB)";;
                timeout-*) where="timeout (> 10 s)";;
                *) where=$(grep -m1 -E "ERROR: libFuzzer|deadly signal" <<<"$out" || echo "no longer reproduces");;
            esac
        fi
        if [ -z "${seen[$where]:-}" ]; then
            seen[$where]=1
            msg=$(grep -A1 -m1 "panicked at" <<<"$out" | tail -n 1 || true)
            findings+=("    $where: $msg ($a)")
        fi
    done < <(find "artifacts/$t" -maxdepth 1 -type f -printf '%T@ %p\n' 2>/dev/null |
        sort -rn | head -n 40 | cut -d' ' -f2-)
    unset seen
    line="$t: ${execs:-?} executions in ${took:-?}s, coverage ${cov:-?}, oom/timeout/crash ${otc:-0/0/0}, ${#findings[@]} distinct finding(s)"
    echo "$line"
    printf '%s\n' "${findings[@]}"
    summary+=("$line")
    for f in "${findings[@]}"; do summary+=("$f"); done
done

echo
echo "== summary (${SECS}s per target)"
printf '%s\n' "${summary[@]}"
