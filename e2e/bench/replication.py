"""Replication figures: commit-to-visible lag on a replica, and how fast a new
replica bootstraps.

A primary and a replica run as real sqld processes on loopback, apart from
the servers pgbench measured. Lag: writer threads insert rows into a probe
table on the primary at a target rate and note when each commit was
acknowledged; a reader polls the replica in a tight loop and notes when each
row becomes visible there. Both times come from this process's monotonic
clock, so the figure is exact about the clock and limited by the poll
interval. Bootstrap: the primary is filled with N bytes, then a new replica
is started and timed until its /ready answers 200 with no lag allowed.

Run by bench.py; `python3 replication.py --sqld BIN [--smoke]` runs only
this part and prints its JSON, for working on it.
"""

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from array import array
from dataclasses import dataclass

import psycopg

from servers import HarnessError, Processes, Sqld, memory_kib
from stats import percentile

# Writer connections: enough that 1,000 commits/s does not depend on one
# connection's commit latency, and the unthrottled rate is what the primary
# sustains with several writers.
WRITERS = 8
# Writer w inserts ids w * ID_STRIDE + 0, 1, 2, ...; one connection commits
# in order, so its largest visible id says every earlier one is visible too.
ID_STRIDE = 1 << 40
# (label, commits per second; None: unthrottled)
RATES = [("100/s", 100), ("1,000/s", 1000), ("max", None)]
LAG_SECONDS = {"full": 10, "smoke": 2}
# How long the reader keeps polling for the last commits once writers stop:
# a replica that fell behind needs time to catch up, and rows it never shows
# are left out of the percentiles.
DRAIN_TIMEOUT_S = 60
# Bootstrap: bytes the primary is filled with (decimal units, as the issue
# states 1 GB), in transactions of FILL_TXN_BYTES so none is huge.
BOOTSTRAP_BYTES = {"full": 1_000_000_000, "smoke": 20_000_000}
FILL_TXN_BYTES = 50_000_000
# randomblob(4000) plus its record header fits one 4 KiB page: a row a page.
ROW_BLOB = 4000
ROW_BYTES = 4096
# sqld's default, passed explicitly: the harness needs to know when the
# primary folds its log into a snapshot (it checks every 5 s).
SNAPSHOT_THRESHOLD_FRAMES = 25_000
COMPACTION_CHECK_S = 5
READY_TIMEOUT_S = 60
BOOTSTRAP_TIMEOUT_S = 1800
MEMORY_SAMPLE_S = 0.05
MB = 1_000_000
ANSI = re.compile(r"\x1b\[[0-9;]*m")
NS_PER_MS = 1_000_000


def replica_of(procs, workdir, binary, primary, name):
    """A replica that is ready only when it has applied everything."""
    return Sqld(procs, workdir, binary, name=name,
                args=["--primary-url", primary.url(), "--max-replica-lag-frames", "0"])


def wait_http_ready(server, timeout):
    """Waits for /ready to answer 200; samples the peak RSS meanwhile (KiB)."""
    deadline = time.monotonic() + timeout
    peak = 0
    while True:
        peak = max(peak, memory_kib(server.pids())[0])
        if server.proc.poll() is not None:
            raise HarnessError(f"{server.name} exited with {server.proc.returncode}; see {server.log}")
        if server.http_status("/ready") == 200:
            return peak
        if time.monotonic() > deadline:
            raise HarnessError(f"{server.name} not ready after {timeout}s; see {server.log}")
        time.sleep(MEMORY_SAMPLE_S)


def connect(server):
    try:
        return psycopg.connect(server.conninfo(), autocommit=True, connect_timeout=10)
    except psycopg.Error as err:
        raise HarnessError(f"cannot connect to {server.name}: {err}") from err


@dataclass
class LagRun:
    """One rate's writers and reader, and what they saw."""

    table: str
    rate: int | None  # commits per second; None: unthrottled
    seconds: float

    def run(self, primary, replica):
        self._create(primary, replica)
        self.acks = [array("q") for _ in range(WRITERS)]
        self.errors = []
        self.writers_done = threading.Event()
        conns = [connect(primary) for _ in range(WRITERS)]
        reader_conn = connect(replica)
        reader = threading.Thread(target=self._guard, args=(self._read, reader_conn), daemon=True)
        reader.start()
        self.start_ns = time.monotonic_ns() + 100 * NS_PER_MS
        self.end_ns = self.start_ns + int(self.seconds * 1e9)
        writers = [threading.Thread(target=self._guard, args=(self._write, c, w), daemon=True)
                   for w, c in enumerate(conns)]
        for t in writers:
            t.start()
        for t in writers:
            t.join()
        self.writers_end_ns = time.monotonic_ns()
        self.writers_done.set()
        reader.join(DRAIN_TIMEOUT_S + 30)
        for c in (*conns, reader_conn):
            c.close()
        if self.errors:
            raise HarnessError(f"lag at {self.table}: {self.errors[0]}")
        if reader.is_alive():
            raise HarnessError(f"lag at {self.table}: the replica reader hung")
        return self._summary()

    def _create(self, primary, replica):
        with connect(primary) as conn:
            conn.execute(f"CREATE TABLE {self.table} (id INTEGER PRIMARY KEY)")
        # The table must exist on the replica before the reader polls it.
        # A fresh session per try: a replica session that has once failed to
        # find the table keeps failing after the table arrives.
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            with connect(replica) as conn:
                try:
                    conn.execute(f"SELECT 1 FROM {self.table} LIMIT 1")
                    return
                except psycopg.Error as err:
                    if time.monotonic() > deadline:
                        raise HarnessError(f"{self.table} never reached the replica: {err}") from err
            time.sleep(0.01)

    def _guard(self, fn, *args):
        """Runs a thread's body; an exception stops the run instead of vanishing."""
        try:
            fn(*args)
        except Exception as err:  # noqa: BLE001 - reported by run()
            self.errors.append(repr(err))
            self.writers_done.set()

    def _write(self, conn, w):
        acks = self.acks[w]
        sql = f"INSERT INTO {self.table} (id) VALUES (%s)"
        # Writer w's k-th commit is due at start + (k * WRITERS + w) / rate: the
        # writers interleave to the target rate. One that falls behind sends
        # at once, so the achieved rate shows what was actually reached.
        interval_ns = None if self.rate is None else 1e9 / self.rate
        seq = 0
        while not self.errors:
            now = time.monotonic_ns()
            if interval_ns is not None:
                due = self.start_ns + int((seq * WRITERS + w) * interval_ns)
                if due >= self.end_ns:
                    return
                if due > now:
                    time.sleep((due - now) / 1e9)
                    now = due
            elif now < self.start_ns:
                time.sleep((self.start_ns - now) / 1e9)
            if now >= self.end_ns:
                return
            conn.execute(sql, (w * ID_STRIDE + seq,), prepare=True)
            acks.append(time.monotonic_ns())
            seq += 1

    def _read(self, conn):
        # One round trip returns every writer's newest visible id.
        sql = "SELECT " + ", ".join(
            f"(SELECT max(id) FROM {self.table} WHERE id >= {w * ID_STRIDE} "
            f"AND id < {(w + 1) * ID_STRIDE})" for w in range(WRITERS))
        last = [-1] * WRITERS
        self.newest_lag_ns = [None] * WRITERS
        self.lags_ns = array("q")
        self.polls_ns = array("q")
        self.seen_before_ack = 0
        drain_deadline = None
        while not self.errors:
            sent = time.monotonic_ns()
            row = conn.execute(sql, prepare=True).fetchone()
            seen = time.monotonic_ns()
            self.polls_ns.append(seen - sent)
            for w, value in enumerate(row):
                if value is None:
                    continue
                newest = int(value) - w * ID_STRIDE
                acks = self.acks[w]
                for seq in range(last[w] + 1, newest + 1):
                    # The ack is noted just after execute returns; a row can
                    # show up on the replica before that note is taken.
                    if seq < len(acks):
                        lag = max(0, seen - acks[seq])
                    else:
                        lag = 0
                        self.seen_before_ack += 1
                    self.lags_ns.append(lag)
                    self.newest_lag_ns[w] = lag
                last[w] = max(last[w], newest)
            if self.writers_done.is_set():
                if all(last[w] + 1 >= len(self.acks[w]) for w in range(WRITERS)):
                    return
                drain_deadline = drain_deadline or time.monotonic() + DRAIN_TIMEOUT_S
                if time.monotonic() > drain_deadline:
                    return

    def _last_commit_lag_ms(self, commits, seen):
        if not commits or seen < commits:
            return None
        w = max((w for w in range(WRITERS) if self.acks[w]), key=lambda w: self.acks[w][-1])
        return round(self.newest_lag_ns[w] / NS_PER_MS, 3)

    def _summary(self):
        commits = sum(len(a) for a in self.acks)
        elapsed_s = (min(self.writers_end_ns, self.end_ns) - self.start_ns) / 1e9
        lags = sorted(self.lags_ns)
        polls = sorted(self.polls_ns)

        def ms(values, p):
            v = percentile(values, p)
            return None if v is None else round(v / NS_PER_MS, 3)

        return {
            "target_commits_per_s": self.rate,
            "writers": WRITERS,
            "seconds": self.seconds,
            "commits": commits,
            "achieved_commits_per_s": round(commits / elapsed_s, 1) if elapsed_s > 0 else None,
            "seen": len(lags),
            "unseen_after_drain": commits - len(lags),
            "seen_before_ack": self.seen_before_ack,
            # The lag of the run's last commit: well above the lag p50, the
            # replica fell behind and was still catching up when the load stopped.
            "last_commit_lag_ms": self._last_commit_lag_ms(commits, len(lags)),
            "lag_p50_ms": ms(lags, 50),
            "lag_p99_ms": ms(lags, 99),
            "lag_max_ms": ms(lags, 100),
            "polls": len(polls),
            "poll_p50_ms": ms(polls, 50),
            "poll_p99_ms": ms(polls, 99),
        }


def measure_lag(primary, replica, seconds):
    results = []
    for i, (label, rate) in enumerate(RATES):
        summary = LagRun(f"probe_{i}", rate, seconds).run(primary, replica)
        results.append({"load": label, **summary})
        print(f"replication lag at {label:<8} {summary['achieved_commits_per_s']:>8} commits/s "
              f"p50 {summary['lag_p50_ms']} ms p99 {summary['lag_p99_ms']} ms "
              f"(poll {summary['poll_p50_ms']} ms)", flush=True)
    return results


def database_bytes(server):
    """The database's logical size: pages in use times the page size."""
    with connect(server) as conn:
        row = conn.execute("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()").fetchone()
    return int(row[0])


def fill(primary, target_bytes):
    """Fills `primary` to about `target_bytes`, FILL_TXN_BYTES per statement."""
    rows_per_txn = max(1, FILL_TXN_BYTES // ROW_BYTES)
    next_id = 1
    with connect(primary) as conn:
        conn.execute("CREATE TABLE big (x INTEGER PRIMARY KEY, b BLOB)")
        while (missing := target_bytes - database_bytes(primary)) > 0:
            rows = min(rows_per_txn, max(1, missing // ROW_BYTES))
            last_id = next_id + rows - 1
            conn.execute(
                f"WITH RECURSIVE c(x) AS (SELECT {next_id} UNION ALL SELECT x + 1 FROM c "
                f"WHERE x < {last_id}) INSERT INTO big SELECT x, randomblob({ROW_BLOB}) FROM c")
            next_id = last_id + 1
    return next_id - 1


def wait_compaction_quiet(primary):
    """Waits until no compaction is due or running, so it does not overlap the bootstrap."""
    last = primary.metric("sqld_replication_snapshots_total")
    quiet_since = time.monotonic()
    deadline = quiet_since + BOOTSTRAP_TIMEOUT_S
    while time.monotonic() - quiet_since < COMPACTION_CHECK_S + 1:
        time.sleep(0.5)
        now = primary.metric("sqld_replication_snapshots_total")
        if now != last:
            last, quiet_since = now, time.monotonic()
        if time.monotonic() > deadline:
            raise HarnessError("the primary kept compacting its log")


def snapshot_from_log(path):
    """Bytes and milliseconds of the snapshot part, from the replica's info log."""
    with open(path, errors="replace") as f:
        for line in f:
            line = ANSI.sub("", line)
            if "bootstrapped from the primary's snapshot" in line:
                fields = dict(re.findall(r"(\w+)=(\d+)", line))
                if "bytes" in fields and "elapsed_ms" in fields:
                    return int(fields["bytes"]), int(fields["elapsed_ms"])
    return None, None


def measure_bootstrap(procs, workdir, binary, target_bytes):
    """Fills a fresh primary, then times a new replica until it has everything."""
    primary = Sqld(procs, workdir, binary, name="primary-bootstrap",
                   args=["--snapshot-threshold-frames", str(SNAPSHOT_THRESHOLD_FRAMES)])
    primary.start()
    started = time.monotonic()
    rows = fill(primary, target_bytes)
    fill_s = time.monotonic() - started
    if target_bytes >= SNAPSHOT_THRESHOLD_FRAMES * ROW_BYTES:
        wait_compaction_quiet(primary)
    size = database_bytes(primary)
    file_size = primary.metric("sqld_database_size_bytes")
    print(f"filled the primary: {size / MB:,.0f} MB in {fill_s:.1f} s; starting a new replica",
          flush=True)
    replica = replica_of(procs, workdir, binary, primary, "replica-bootstrap")
    t0 = time.monotonic()
    # Info level: its log then says how long the snapshot itself took.
    replica.start(extra_env={"SQLD_LOG": "info"}, wait=False)
    peak_rss = wait_http_ready(replica, BOOTSTRAP_TIMEOUT_S)
    seconds = time.monotonic() - t0
    rss_ready = memory_kib(replica.pids())[0]
    with connect(replica) as conn:
        newest = conn.execute("SELECT max(x) FROM big").fetchone()[0]
    if newest is None or int(newest) != rows:
        raise HarnessError(f"the new replica has rows up to {newest}, expected {rows}")
    procs.stop(replica.proc)
    procs.stop(primary.proc)
    shutil.rmtree(replica.data, ignore_errors=True)
    shutil.rmtree(primary.data, ignore_errors=True)
    snapshot_bytes, snapshot_ms = snapshot_from_log(replica.log)
    result = {
        "target_bytes": target_bytes,
        "database_bytes": size,
        "database_file_bytes": None if file_size is None else int(file_size),
        "rows": rows,
        "fill_seconds": round(fill_s, 2),
        "seconds": round(seconds, 3),
        "mb_per_s": round(size / MB / seconds, 1),
        # The rest arrived as frames after the snapshot (below the snapshot
        # threshold, that is everything).
        "snapshot_bytes": snapshot_bytes,
        "snapshot_seconds": None if snapshot_ms is None else snapshot_ms / 1000,
        "replica_peak_rss_kib": peak_rss,
        "replica_rss_ready_kib": rss_ready,
    }
    print(f"bootstrap: {size / MB:,.0f} MB in {seconds:.2f} s = {result['mb_per_s']} MB/s, "
          f"replica peak RSS {peak_rss / 1024:.1f} MiB", flush=True)
    return result


def measure(procs, workdir, binary, mode, bootstrap_bytes=None):
    """Every replication figure, on a primary and replicas of their own."""
    primary = Sqld(procs, workdir, binary, name="primary",
                   args=["--snapshot-threshold-frames", str(SNAPSHOT_THRESHOLD_FRAMES)])
    primary.start()
    replica = replica_of(procs, workdir, binary, primary, "replica")
    replica.start(wait=False)
    wait_http_ready(replica, READY_TIMEOUT_S)
    lag = measure_lag(primary, replica, LAG_SECONDS[mode])
    procs.stop(replica.proc)
    procs.stop(primary.proc)
    # A primary of its own, so the new replica replays the fill and nothing
    # of the lag runs' small transactions.
    bootstrap = measure_bootstrap(procs, workdir, binary, bootstrap_bytes or BOOTSTRAP_BYTES[mode])
    return {
        "available": True,
        "note": "primary and replica are sqld processes on one machine, over loopback; ack and "
                "visibility times come from one monotonic clock in the harness. A row's lag is the "
                "time from its INSERT's acknowledgement on the primary to the end of the first "
                "replica poll that returned it, so the resolution is one poll round trip "
                "(poll_p50_ms).",
        "writers": WRITERS,
        "lag": lag,
        "bootstrap": bootstrap,
    }


def main():
    """Only the replication part, for working on it: prints the JSON."""
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--sqld", required=True)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--bootstrap-mb", type=int, help="fill the primary with this many MB")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="sqld-bench-replication-")
    procs = Processes(os.path.join(workdir, "pids"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        result = measure(procs, workdir, os.path.abspath(args.sqld), "smoke" if args.smoke else "full",
                         args.bootstrap_mb and args.bootstrap_mb * MB)
        print(json.dumps(result, indent=2))
        return 0
    except HarnessError as err:
        print(f"replication harness failed: {err}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
