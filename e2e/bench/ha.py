"""High-availability figures: what synchronous replication costs a commit,
how long writes are unavailable after the primary is killed and a replica
promoted, and how long a switchover pauses writes.

sqld processes on loopback, apart from the servers pgbench measured:
- commit latency: one connection commits single-row INSERTs on a primary
  with one replica, asynchronous (`--synchronous-replicas 0`) and then
  synchronous (`1`), each for the same time; p50 and p99 side by side;
- failover: a primary and two replicas under a writer; `kill -9` of the
  primary, then `sqld promote` of the most advanced replica (by its admin
  status), timed from the kill to the first write the new primary
  acknowledges (the harness decides at once: no detection delay);
- switchover: `sqld switchover` under a writer on the primary, which
  reconnects through the switch; the tool's measured pause, and the longest
  gap between two acknowledged writes the writer saw.

Run by bench.py; `python3 ha.py --sqld BIN [--smoke]` runs only this part
and prints its JSON.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import psycopg

from servers import HarnessError, Processes, Sqld, wait_ready
from stats import percentile

COMMIT_SECONDS = {"full": 10, "smoke": 2}
WRITER_WARMUP_S = {"full": 2, "smoke": 0.5}
ADMIN_TIMEOUT = "60s"


def replica_of(procs, workdir, binary, primary, name):
    return Sqld(procs, workdir, binary, name=name,
                args=["--primary-url", primary.url(), "--max-replica-lag-frames", "0"])


def status(server):
    with urllib.request.urlopen(server.url() + "/v1/admin/status", timeout=5) as res:
        return json.load(res)


def most_advanced(replicas):
    """The replica with the highest (epoch, frame), once positions stop
    moving (one may still apply what it got before the primary died)."""
    def positions():
        return [(status(r)["epoch"], status(r)["frame_no"]) for r in replicas]
    last = positions()
    while True:
        time.sleep(0.05)
        now = positions()
        if now == last:
            break
        last = now
    return max(zip(last, range(len(replicas)), replicas))[2]


def sqld_command(binary, *args):
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise HarnessError(f"sqld {' '.join(args)}: {done.stderr.strip()}")
    return json.loads(done.stdout)


def commit_latencies(server, seconds):
    """Milliseconds per autocommit INSERT, for `seconds`."""
    out = []
    with psycopg.connect(server.conninfo(), autocommit=True) as c:
        c.execute("create table if not exists probe(id integer primary key, at real)")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter_ns()
            c.execute("insert into probe(at) values (%s)", (time.time(),))
            out.append((time.perf_counter_ns() - started) / 1e6)
    return sorted(out)


def measure_commit_cost(procs, workdir, binary, seconds):
    rows = []
    for required in (0, 1):
        primary = Sqld(procs, workdir, binary, name=f"sync{required}-primary",
                       args=["--synchronous-replicas", str(required)])
        primary.start()
        replica = replica_of(procs, workdir, binary, primary, f"sync{required}-replica")
        replica.start()
        lat = commit_latencies(primary, seconds)
        rows.append({
            "synchronous_replicas": required,
            "commits": len(lat),
            "p50_ms": percentile(lat, 50),
            "p99_ms": percentile(lat, 99),
        })
        procs.stop(replica.proc)
        procs.stop(primary.proc)
    return rows


class Writer:
    """One connection inserting rows in a loop, reconnecting through
    failures; notes when each write was acknowledged."""

    def __init__(self, conninfos):
        self.conninfos = conninfos
        self.acks = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        i = 0
        while not self.stop.is_set():
            for conninfo in self.conninfos:
                try:
                    with psycopg.connect(conninfo, autocommit=True, connect_timeout=2) as c:
                        while not self.stop.is_set():
                            i += 1
                            c.execute("insert into t(v) values (%s)", (i,))
                            self.acks.append(time.monotonic())
                except psycopg.Error:
                    time.sleep(0.01)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.stop.set()
        self.thread.join(timeout=30)

    def first_ack_after(self, t):
        return next((a for a in list(self.acks) if a > t), None)

    def longest_gap_ms(self):
        acks = list(self.acks)
        return max((b - a for a, b in zip(acks, acks[1:])), default=0) * 1e3


def measure_failover(procs, workdir, binary, warmup):
    primary = Sqld(procs, workdir, binary, name="failover-primary")
    primary.start()
    replicas = [replica_of(procs, workdir, binary, primary, f"failover-r{i}") for i in (1, 2)]
    with psycopg.connect(primary.conninfo(), autocommit=True) as c:
        c.execute("create table t(id integer primary key, v integer)")
    for r in replicas:
        r.start()
    with Writer([primary.conninfo()] + [r.conninfo() for r in replicas]) as writer:
        time.sleep(warmup)
        killed = time.monotonic()
        primary.proc.kill()
        primary.proc.wait()
        best = most_advanced(replicas)
        sqld_command(binary, "promote", "--url", best.url(), "--timeout", ADMIN_TIMEOUT)
        promoted = time.monotonic()
        with psycopg.connect(best.conninfo(), autocommit=True) as c:
            c.execute("insert into t(v) values (-1)")
        first_write = time.monotonic()
    for r in replicas:
        procs.stop(r.proc)
    return {
        "kill_to_promoted_ms": (promoted - killed) * 1e3,
        "kill_to_first_write_ms": (first_write - killed) * 1e3,
        "acknowledged_before_kill": len([a for a in writer.acks if a < killed]),
    }


def measure_switchover(procs, workdir, binary, warmup):
    primary = Sqld(procs, workdir, binary, name="switch-primary")
    primary.start()
    target = replica_of(procs, workdir, binary, primary, "switch-target")
    with psycopg.connect(primary.conninfo(), autocommit=True) as c:
        c.execute("create table t(id integer primary key, v integer)")
    target.start()
    with Writer([primary.conninfo()]) as writer:
        time.sleep(warmup)
        out = sqld_command(binary, "switchover", "--url", primary.url(), "--to", target.url(),
                           "--timeout", ADMIN_TIMEOUT)
        time.sleep(warmup)
    wait_ready(primary, primary.proc)
    procs.stop(primary.proc)
    procs.stop(target.proc)
    return {
        "write_pause_ms": out["write_pause_ms"],
        "longest_gap_between_acks_ms": writer.longest_gap_ms(),
        "acknowledged": len(writer.acks),
    }


def measure(procs, workdir, binary, mode):
    seconds = COMMIT_SECONDS[mode]
    warmup = WRITER_WARMUP_S[mode]
    return {
        "available": True,
        "note": "sqld processes on one machine over loopback; the harness orchestrates "
                "(no failure detection delay is included).",
        "commit_latency": measure_commit_cost(procs, workdir, binary, seconds),
        "failover": measure_failover(procs, workdir, binary, warmup),
        "switchover": measure_switchover(procs, workdir, binary, warmup),
    }


def main():
    """Only the high-availability part, for working on it: prints the JSON."""
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--sqld", required=True)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="sqld-bench-ha-")
    procs = Processes(os.path.join(workdir, "pids"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        result = measure(procs, workdir, os.path.abspath(args.sqld),
                         "smoke" if args.smoke else "full")
        print(json.dumps(result, indent=2))
        return 0
    except HarnessError as err:
        print(f"high-availability harness failed: {err}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
