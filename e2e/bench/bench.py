#!/usr/bin/env python3
"""sqld beside PostgreSQL: the same pgbench scripts, the same machine, one run.

Started by run.sh (which installs PostgreSQL and builds the binaries). Starts
a throwaway PostgreSQL, a local sqld and the no-op responder, loads the same
data into both databases, then runs every workload against PostgreSQL and
sqld alternately for several rounds while sampling memory, then measures
replication lag and bootstrap on a primary and replicas of its own
(replication.py), then synchronous commit cost, failover and switchover
(ha.py), and writes the results (report.py) as JSON and markdown.
`--profile WORKLOAD` instead runs one workload against sqld under
`perf record`.
"""

import argparse
import glob
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from dataclasses import dataclass

import ha
import replication
import report
from servers import HarnessError, Noop, Postgres, Processes, Sqld, memory_kib, psql
from stats import percentile

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "scripts")
# Rows loaded into `accounts` (scripts/schema.sql); checked after the load.
ACCOUNTS = 100_000
# Extra time a pgbench run may take beyond its -T before it counts as hung.
PGBENCH_GRACE_S = 120
# System calls counted per transaction by --profile.
SYSCALLS = ("recvfrom", "read", "sendto", "write", "writev", "epoll_wait", "futex",
            "fsync", "fdatasync", "pwrite64", "pread64", "clock_nanosleep", "nanosleep")
# How often memory is sampled during a run.
MEMORY_SAMPLE_S = 0.2


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    script: str
    mode: str  # pgbench -M: simple, extended or prepared
    clients: int
    # Also run against the no-op responder, for the ceiling.
    ceiling: bool = False


WORKLOADS = [
    Workload("select-simple-1", "point select", "point_select.sql", "simple", 1),
    Workload("select-extended-1", "point select", "point_select.sql", "extended", 1),
    Workload("select-prepared-1", "point select", "point_select.sql", "prepared", 1),
    Workload("select-simple-8", "point select", "point_select.sql", "simple", 8, True),
    Workload("select-extended-8", "point select", "point_select.sql", "extended", 8, True),
    Workload("select-prepared-8", "point select", "point_select.sql", "prepared", 8, True),
    Workload("update-1", "durable single-row UPDATE", "update.sql", "prepared", 1),
    Workload("update-8", "durable single-row UPDATE", "update.sql", "prepared", 8),
    Workload("tpcb-8", "TPC-B-like transaction", "tpcb.sql", "prepared", 8),
    Workload("range-4", "1,000-row range scan", "range_scan.sql", "prepared", 4),
]


def pgbench_threads(clients):
    """pgbench -j: one client thread per core at most."""
    return max(1, min(clients, os.cpu_count() or 1))


class MemorySampler:
    """Samples the RSS/PSS of each server's processes in a background thread."""

    def __init__(self, servers):
        self.servers = servers
        self.peak = {s.name: (0, 0) for s in servers}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self):
        while not self._stop.is_set():
            for s in self.servers:
                rss, pss = memory_kib(s.pids())
                old = self.peak[s.name]
                self.peak[s.name] = (max(old[0], rss), max(old[1], pss))
            self._stop.wait(MEMORY_SAMPLE_S)


def run_pgbench(server, workload, duration, log_dir, tag):
    """One pgbench run; returns tps and latency percentiles or raises."""
    prefix = os.path.join(log_dir, tag)
    argv = [
        "pgbench", "-n", *server.conn_args()[:-2],
        "-M", workload.mode,
        "-c", str(workload.clients), "-j", str(pgbench_threads(workload.clients)),
        "-T", str(duration),
        "-f", os.path.join(SCRIPTS, workload.script),
        "--log", f"--log-prefix={prefix}",
        server.conn_args()[-1],
    ]
    try:
        res = subprocess.run(
            argv, capture_output=True, text=True, cwd=log_dir,
            timeout=duration + PGBENCH_GRACE_S,
        )
    except subprocess.TimeoutExpired as err:
        raise HarnessError(f"{tag}: pgbench did not finish within {duration + PGBENCH_GRACE_S}s") from err
    out = res.stdout + res.stderr
    if res.returncode != 0:
        raise HarnessError(f"{tag}: pgbench exited {res.returncode}:\n{out.strip()}")
    tps = processed = failed = None
    for line in out.splitlines():
        if line.startswith("tps = "):
            tps = float(line.split()[2])
        elif line.startswith("number of transactions actually processed:"):
            processed = int(line.split(":")[1].split("/")[0])
        elif line.startswith("number of failed transactions:"):
            failed = int(line.split(":")[1].split()[0])
    if tps is None or not processed:
        raise HarnessError(f"{tag}: pgbench processed no transactions:\n{out.strip()}")
    if failed:
        raise HarnessError(f"{tag}: {failed} failed transactions:\n{out.strip()}")
    # Compact (8 bytes a transaction): every round's latencies are kept
    # until the end, for percentiles over all of them.
    latencies = array("q")
    for path in glob.glob(prefix + ".*"):
        with open(path) as f:
            # client_id transaction_no latency_us script_no epoch_s epoch_us
            latencies.extend(int(line.split()[2]) for line in f)
        os.remove(path)
    if not latencies:
        raise HarnessError(f"{tag}: pgbench wrote no transaction log")
    return {"tps": tps, "transactions": processed, "latencies_us": latencies}


def summarize(runs):
    """Median tps over rounds; p50/p99 over every transaction of every round."""
    pooled = sorted(lat for r in runs for lat in r["latencies_us"])
    return {
        "tps_median": statistics.median(r["tps"] for r in runs),
        "tps_runs": [round(r["tps"], 1) for r in runs],
        "transactions": sum(r["transactions"] for r in runs),
        "latency_p50_ms": percentile(pooled, 50) / 1000,
        "latency_p99_ms": percentile(pooled, 99) / 1000,
    }


def load(server):
    psql(server, file=os.path.join(SCRIPTS, "schema.sql"))
    server.after_load()
    count = int(psql(server, "SELECT count(*) FROM accounts"))
    if count != ACCOUNTS:
        raise HarnessError(f"{server.name}: accounts has {count} rows, expected {ACCOUNTS}")


def benchmark(args, procs, workdir):
    pg = Postgres(procs, workdir, args.pg_bin_dir)
    sqld = Sqld(procs, workdir, args.sqld)
    noop = Noop(procs, workdir, args.noop)
    log_dir = os.path.join(workdir, "pgbench")
    os.makedirs(log_dir)

    memory = {}
    pg.start()
    sqld.start()
    noop.start()
    memory["start"] = {s.name: memory_kib(s.pids()) for s in (pg, sqld)}
    for server in (pg, sqld):
        print(f"loading {ACCOUNTS} accounts into {server.name}", flush=True)
        load(server)
    if args.warmup:
        for server in (pg, sqld, noop):
            run_pgbench(server, WORKLOADS[5], args.warmup, log_dir, f"warmup-{server.name}")
    time.sleep(1)
    memory["idle"] = {s.name: memory_kib(s.pids()) for s in (pg, sqld)}

    runs = {w.name: {"postgres": [], "sqld": [], "noop": []} for w in WORKLOADS}
    peaks = {w.name: {} for w in WORKLOADS}
    for rnd in range(args.rounds):
        for w in WORKLOADS:
            # Alternate who goes first so neither always gets the warmer machine.
            order = [pg, sqld] if rnd % 2 == 0 else [sqld, pg]
            if w.ceiling:
                order.append(noop)
            for server in order:
                tag = f"{w.name}-{server.name}-r{rnd + 1}"
                with MemorySampler([server]) as sampler:
                    run = run_pgbench(server, w, args.duration, log_dir, tag)
                peak = sampler.peak[server.name]
                old = peaks[w.name].get(server.name, (0, 0))
                peaks[w.name][server.name] = (max(old[0], peak[0]), max(old[1], peak[1]))
                print(f"round {rnd + 1}/{args.rounds} {w.name:<18} {server.name:<8} "
                      f"{run['tps']:>10.1f} tps", flush=True)
                runs[w.name][server.name].append(run)
    time.sleep(1)
    memory["idle_after"] = {s.name: memory_kib(s.pids()) for s in (pg, sqld)}
    memory["peak_by_workload"] = peaks

    results = []
    for w in WORKLOADS:
        entry = {
            "name": w.name, "title": w.title, "script": w.script,
            "mode": w.mode, "clients": w.clients,
        }
        for server in ("postgres", "sqld", "noop"):
            entry[server] = summarize(runs[w.name][server]) if runs[w.name][server] else None
        results.append(entry)
    versions = {
        "postgres": pg.version(),
        "sqld": sqld.version(),
        "pgbench": subprocess.run(["pgbench", "--version"], capture_output=True,
                                  text=True).stdout.strip(),
    }
    return results, memory, versions


def profile(args, procs, workdir):
    """Runs one workload against sqld under perf record; prints the hot spots."""
    workload = next((w for w in WORKLOADS if w.name == args.profile), None)
    if workload is None:
        raise HarnessError(f"unknown workload {args.profile}; one of "
                           + ", ".join(w.name for w in WORKLOADS))
    sqld = Sqld(procs, workdir, args.sqld)
    sqld.start()
    load(sqld)
    log_dir = os.path.join(workdir, "pgbench")
    os.makedirs(log_dir)
    out_dir = os.path.join(HERE, "results", "profile")
    os.makedirs(out_dir, exist_ok=True)
    data = os.path.join(out_dir, f"{workload.name}.perf.data")
    run_pgbench(sqld, workload, 2, log_dir, "warmup")
    perf = procs.spawn(
        ["perf", "record", "-e", "cpu-clock", "-F", "999", "--call-graph", "dwarf,16384",
         "-p", str(sqld.proc.pid), "-o", data],
        os.path.join(workdir, "perf.log"), stop_signal=signal.SIGINT,
    )
    time.sleep(1)
    run = run_pgbench(sqld, workload, args.duration, log_dir, "profiled")
    procs.stop(perf)
    print(f"{workload.name} under perf: {run['tps']:.1f} tps; data in {data}")
    # System calls per transaction, from kernel tracepoints (cheap, unlike
    # strace): how many reads, writes, wake-ups and syncs one transaction costs.
    counts = os.path.join(workdir, "syscalls.csv")
    stat = procs.spawn(
        ["perf", "stat", "-x", ",", "-o", counts, "-p", str(sqld.proc.pid),
         "-e", ",".join(f"syscalls:sys_enter_{name}" for name in SYSCALLS)],
        os.path.join(workdir, "perf-stat.log"), stop_signal=signal.SIGINT,
    )
    time.sleep(1)
    counted = run_pgbench(sqld, workload, min(args.duration, 5), log_dir, "counted")
    procs.stop(stat)
    print(f"\n== system calls per transaction ({counted['transactions']} transactions)")
    with open(counts) as f:
        for line in f:
            fields = line.strip().split(",")
            if len(fields) > 2 and fields[0].isdigit():
                name = fields[2].split("sys_enter_")[-1]
                print(f"{name:>12} {int(fields[0]) / counted['transactions']:8.2f}")
    for sort in ("--no-children", "--children"):
        rep = subprocess.run(
            ["perf", "report", "-i", data, "--stdio", sort, "--percent-limit", "0.5",
             "-g", "none", "--sort", "dso,symbol"],
            capture_output=True, text=True, timeout=600,
        )
        path = os.path.join(out_dir, f"{workload.name}{sort.replace('--', '.')}.txt")
        with open(path, "w") as f:
            f.write(rep.stdout)
        print(f"\n== perf report {sort} ({path})")
        print("\n".join(l for l in rep.stdout.splitlines() if l and not l.startswith("#"))[:6000])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="short runs, one round (CI)")
    ap.add_argument("--duration", type=int, help="seconds per pgbench run")
    ap.add_argument("--rounds", type=int, help="rounds of every workload")
    ap.add_argument("--profile", metavar="WORKLOAD", help="profile sqld on one workload with perf")
    ap.add_argument("--sqld", required=True, help="the sqld binary")
    ap.add_argument("--noop", required=True, help="the no-op responder binary")
    ap.add_argument("--pg-bin-dir", required=True, help="directory of initdb and postgres")
    ap.add_argument("--pid-file", required=True, help="where child pids are recorded")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--bootstrap-mb", type=int,
                    help="MB the primary is filled with before a replica bootstraps "
                         "(default 1000; 20 with --smoke)")
    args = ap.parse_args()
    mode = "smoke" if args.smoke else "full"
    args.duration = args.duration or (3 if args.smoke else 10)
    args.rounds = args.rounds or (1 if args.smoke else 3)
    args.warmup = 0 if args.smoke else 3

    procs = Processes(args.pid_file)

    def on_signal(signum, _frame):
        procs.stop_all()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    workdir = tempfile.mkdtemp(prefix="sqld-bench-")
    os.chmod(workdir, 0o755)
    try:
        if args.profile:
            profile(args, procs, workdir)
            return 0
        started = time.time()
        load_before = report.load_average()
        results, memory, versions = benchmark(args, procs, workdir)
        # The pgbench servers are done: the replication figures get the
        # machine to themselves.
        procs.stop_all()
        print("replication: a primary and a replica", flush=True)
        repl = replication.measure(procs, workdir, args.sqld, mode,
                                   args.bootstrap_mb and args.bootstrap_mb * replication.MB)
        print("high availability: synchronous commits, failover, switchover", flush=True)
        procs.stop_all()
        high_availability = ha.measure(procs, workdir, args.sqld, mode)
        doc = report.document(mode, args, results, memory, versions, repl, started, load_before,
                              high_availability)
        out_dir = os.path.join(HERE, "results") if mode == "full" else os.path.join(HERE, "results", "smoke")
        json_path, md_path = report.write(doc, out_dir)
        print()
        print(report.markdown(doc))
        print(f"written: {json_path}\n         {md_path}")
        return 0
    except HarnessError as err:
        print(f"benchmark harness failed: {err}", file=sys.stderr)
        for log in glob.glob(os.path.join(workdir, "*.log")):
            with open(log, errors="replace") as f:
                tail = f.readlines()[-20:]
            if tail:
                print(f"--- last lines of {os.path.basename(log)}", file=sys.stderr)
                sys.stderr.writelines(tail)
        return 1
    finally:
        procs.stop_all()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
