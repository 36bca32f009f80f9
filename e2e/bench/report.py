"""The benchmark's results: one JSON document and its markdown rendering.

`document` gathers the measurements with the machine they were taken on;
`markdown` renders the tables (workloads, memory, targets, replication);
a figure never fails the run, however bad.
`write` stores both under a timestamped name in `results/`.
"""

import datetime
import json
import os
import platform
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KIB_PER_MIB = 1024
# 8-client workloads whose peak memory counts as "under the 8-client load".
EIGHT_CLIENT_LOAD = ("select-prepared-8", "update-8", "tpcb-8")
# The project's goals, as ratios measured in one run (issue 6).
TARGETS = [
    ("point select, prepared, 8 clients: sqld / PostgreSQL", "select-prepared-8", "postgres", 1.2),
    ("point select, prepared, 8 clients: sqld / no-op ceiling", "select-prepared-8", "noop", 0.8),
    ("durable UPDATE, 8 clients: sqld / PostgreSQL", "update-8", "postgres", 1.0),
    ("TPC-B-like, 8 clients: sqld / PostgreSQL", "tpcb-8", "postgres", 1.0),
]
IDLE_RSS_TARGET_MIB = 20
# Replication lag p99 (ms) at the 1,000 commits/s load.
LAG_TARGET_LOAD = "1,000/s"
LAG_P99_TARGET_MS = 10


def load_average():
    """The 1-minute load average: other work on the machine skews every figure."""
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def machine():
    info = {"nproc": os.cpu_count(), "kernel": platform.release(), "arch": platform.machine()}
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                info["memory_mib"] = int(line.split()[1]) // KIB_PER_MIB
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    return info


def git_commit():
    def git(*args):
        res = subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True)
        return res.stdout.strip() if res.returncode == 0 else ""

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    if git("status", "--porcelain", "--", "sqld"):
        commit += " (sqld/ modified)"
    return commit


def document(mode, args, results, memory, versions, replication, started, load_before,
             high_availability=None):
    return {
        "date": datetime.datetime.fromtimestamp(started, datetime.timezone.utc).isoformat(timespec="seconds"),
        "mode": mode,
        "machine": {**machine(), "load_average_1m": {"start": load_before, "end": load_average()}},
        "versions": {**versions, "sqld_commit": git_commit()},
        "settings": {"duration_s": args.duration, "rounds": args.rounds, "warmup_s": args.warmup},
        "workloads": [
            {**w, "sqld_vs_postgres": ratio(w, "postgres"), "sqld_vs_noop": ratio(w, "noop")}
            for w in results
        ],
        "memory_kib": {
            "note": "rss/pss pairs; PostgreSQL sums its postmaster and every child process "
                    "(RSS counts shared buffers once per process, PSS splits them)",
            **{k: {s: {"rss": v[0], "pss": v[1]} for s, v in by_server.items()}
               for k, by_server in memory.items() if k != "peak_by_workload"},
            "peak_by_workload": {
                w: {s: {"rss": v[0], "pss": v[1]} for s, v in by_server.items()}
                for w, by_server in memory["peak_by_workload"].items()
            },
        },
        "replication": replication,
        "high_availability": high_availability,
    }


def ratio(workload, other):
    if not workload.get("sqld") or not workload.get(other):
        return None
    return round(workload["sqld"]["tps_median"] / workload[other]["tps_median"], 3)


def write(doc, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    stamp = doc["date"].replace(":", "").replace("-", "").replace("+0000", "Z")
    base = os.path.join(out_dir, f"{stamp}-{doc['mode']}")
    with open(base + ".json", "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    with open(base + ".md", "w") as f:
        f.write(markdown(doc))
    return base + ".json", base + ".md"


def _num(value, digits=0):
    return "-" if value is None else f"{value:,.{digits}f}"


def _lat(summary):
    if not summary:
        return "-"
    return f"{summary['latency_p50_ms']:.3f} / {summary['latency_p99_ms']:.3f}"


def _mib(kib):
    return f"{kib / KIB_PER_MIB:.1f}"


def _peak(doc, server, kind):
    peaks = doc["memory_kib"]["peak_by_workload"]
    return max(peaks[w][server][kind] for w in EIGHT_CLIENT_LOAD if server in peaks.get(w, {}))


def markdown(doc):
    m = doc["machine"]
    v = doc["versions"]
    s = doc["settings"]
    lines = [
        f"# sqld beside PostgreSQL: {doc['mode']} run, {doc['date']}",
        "",
        f"Machine: {m['nproc']} CPUs ({m.get('cpu', '?')}), {m['memory_mib']:,} MiB RAM, "
        f"Linux {m['kernel']} {m['arch']}; 1-minute load average {m['load_average_1m']['start']:.2f} "
        f"at the start, {m['load_average_1m']['end']:.2f} at the end.  ",
        f"PostgreSQL {v['postgres']}; {v['pgbench']}; sqld {v['sqld_commit']}.  ",
        f"Each workload: {s['rounds']} round(s) of {s['duration_s']} s per server, servers "
        "alternating; tps is the median over rounds, latency p50 / p99 over every "
        "transaction of every round.",
        "",
        "| workload | protocol | clients | PostgreSQL tps | p50 / p99 ms | sqld tps | p50 / p99 ms "
        "| sqld / PostgreSQL | no-op tps | sqld / no-op |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for w in doc["workloads"]:
        pg, sq, noop = w["postgres"], w["sqld"], w["noop"]
        lines.append(
            f"| {w['title']} | {w['mode']} | {w['clients']} "
            f"| {_num(pg and pg['tps_median'])} | {_lat(pg)} "
            f"| {_num(sq and sq['tps_median'])} | {_lat(sq)} "
            f"| {_num(w['sqld_vs_postgres'], 2)} "
            f"| {_num(noop and noop['tps_median'])} | {_num(w['sqld_vs_noop'], 2)} |"
        )
    mem = doc["memory_kib"]
    lines += [
        "",
        "## Memory (MiB)",
        "",
        "RSS counts a file page once per mapping of it, and SQLite maps the database "
        "once per connection, so sqld's RSS under load counts each database page read "
        "up to once per connection; PSS counts it once.",
        "",
        "| when | sqld RSS | sqld PSS | PostgreSQL RSS, all processes "
        "| PostgreSQL PSS, all processes |",
        "|---|--:|--:|--:|--:|",
    ]

    def row(label, sqld, pg):
        return (f"| {label} | {_mib(sqld[0])} | {_mib(sqld[1])} | {_mib(pg[0])} "
                f"| {_mib(pg[1])} |")

    def sample(key, server):
        return mem[key][server]["rss"], mem[key][server]["pss"]

    for key, label in (("start", "started, empty database"),
                       ("idle", "idle, after load and warm-up")):
        lines.append(row(label, sample(key, "sqld"), sample(key, "postgres")))
    lines.append(row(f"peak under 8 clients ({', '.join(EIGHT_CLIENT_LOAD)})",
                     (_peak(doc, "sqld", "rss"), _peak(doc, "sqld", "pss")),
                     (_peak(doc, "postgres", "rss"), _peak(doc, "postgres", "pss"))))
    lines.append(row("idle, after every run", sample("idle_after", "sqld"),
                     sample("idle_after", "postgres")))
    lines += ["", "## Targets", "", "| target | goal | measured | met |", "|---|--:|--:|---|"]
    by_name = {w["name"]: w for w in doc["workloads"]}
    for label, name, other, goal in TARGETS:
        measured = ratio(by_name[name], other)
        met = "-" if measured is None else ("yes" if measured >= goal else "no")
        lines.append(f"| {label} | >= {goal} | {_num(measured, 2)} | {met} |")
    idle = mem["idle"]["sqld"]["rss"] / KIB_PER_MIB
    lines.append(f"| sqld idle RSS (MiB) | <= {IDLE_RSS_TARGET_MIB} | {idle:.1f} | "
                 f"{'yes' if idle <= IDLE_RSS_TARGET_MIB else 'no'} |")
    lag = _lag_at(doc, LAG_TARGET_LOAD)
    p99 = lag and lag["lag_p99_ms"]
    met = "-" if p99 is None else ("yes" if p99 <= LAG_P99_TARGET_MS else "no")
    achieved = "" if not lag else f" (achieved {_num(lag['achieved_commits_per_s'])} commits/s)"
    lines.append(f"| replication lag p99 at 1,000 commits/s (ms){achieved} | <= {LAG_P99_TARGET_MS} "
                 f"| {_lag(lag, 'lag_p99_ms') if lag else '-'} | {met} |")
    lines += ["", "## Replication", ""] + _replication(doc.get("replication")) + [""]
    lines += ["## High availability", ""] + _high_availability(doc.get("high_availability")) + [""]
    return "\n".join(lines)


def _lag_at(doc, load):
    rep = doc.get("replication") or {}
    return next((r for r in rep.get("lag", []) if r["load"] == load), None)


def _lag(run, key):
    """A lag figure; at least that when some rows never showed on the replica."""
    value = _num(run[key], 2)
    return f">= {value}" if run["unseen_after_drain"] and run[key] is not None else value


def _replication(rep):
    if not rep or not rep.get("available"):
        return [(rep or {}).get("reason", "not measured") + "."]
    lines = [
        f"A primary and one replica, sqld processes on this machine over loopback; "
        f"{rep['writers']} writer connections insert one row per autocommit transaction "
        "on the primary, paced to the target rate (unthrottled for \"max\"); a reader "
        "polls the replica in a tight loop. Lag is from the primary's acknowledgement of "
        "a commit to the end of the first replica poll that shows it, both on one clock "
        "in the harness; its resolution is one poll round trip (the poll column). "
        "When the lag of the run's last commit is far above the lag p50, the replica could not "
        "keep up with that rate: its lag grew for as long as the load ran, and the figures "
        "depend on how long that was.",
        "",
        "| load | achieved commits/s | commits | lag p50 ms | lag p99 ms | lag max ms "
        "| poll p50 / p99 ms | lag of the last commit ms | seen before ack | not seen |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rep["lag"]:
        lines.append(
            f"| {r['load']} | {_num(r['achieved_commits_per_s'])} | {r['commits']:,} "
            f"| {_lag(r, 'lag_p50_ms')} | {_lag(r, 'lag_p99_ms')} | {_lag(r, 'lag_max_ms')} "
            f"| {_num(r['poll_p50_ms'], 3)} / {_num(r['poll_p99_ms'], 3)} | {_num(r['last_commit_lag_ms'], 1)} "
            f"| {r['seen_before_ack']} | {r['unseen_after_drain']} |")
    b = rep["bootstrap"]
    snapshot = ("-" if b["snapshot_bytes"] is None
                else f"{b['snapshot_bytes'] / 1e6:,.1f} MB in {b['snapshot_seconds']:.2f} s")
    lines += [
        "",
        "Bootstrap of a new replica (`--max-replica-lag-frames 0`): from starting its "
        "process until its `/ready` answers 200; MB/s is the primary's database size "
        "(pages in use times page size, MB = 10^6 bytes) over that time.",
        "",
        "| database MB | seconds | MB/s | of which snapshot | replica peak RSS MiB | replica RSS when ready MiB |",
        "|--:|--:|--:|--:|--:|--:|",
        f"| {b['database_bytes'] / 1e6:,.1f} | {b['seconds']:.2f} | {_num(b['mb_per_s'], 1)} "
        f"| {snapshot} | {_mib(b['replica_peak_rss_kib'])} | {_mib(b['replica_rss_ready_kib'])} |",
    ]
    return lines


def _high_availability(ha):
    if not ha or not ha.get("available"):
        return [(ha or {}).get("reason", "not measured") + "."]
    rows = {r["synchronous_replicas"]: r for r in ha["commit_latency"]}
    a, s = rows[0], rows[1]
    f, w = ha["failover"], ha["switchover"]
    return [
        "One connection commits single-row INSERTs on a primary with one replica, "
        "asynchronously and then with `--synchronous-replicas 1` (each commit waits until "
        "the replica holds it durably), in the same run. Failover: `kill -9` of the primary "
        "under a writer, `sqld promote` of the most advanced of two replicas, timed to the "
        "first write the new primary acknowledges (the harness acts at once: no detection "
        "delay). Switchover: `sqld switchover` under a writer that reconnects through it. "
        + ha["note"],
        "",
        "| commit latency | commits | p50 ms | p99 ms |",
        "|---|--:|--:|--:|",
        f"| asynchronous | {a['commits']:,} | {_num(a['p50_ms'], 3)} | {_num(a['p99_ms'], 3)} |",
        f"| --synchronous-replicas 1 | {s['commits']:,} | {_num(s['p50_ms'], 3)} | {_num(s['p99_ms'], 3)} |",
        "",
        "| event | figure |",
        "|---|--:|",
        f"| failover: kill -9 to promoted (ms) | {_num(f['kill_to_promoted_ms'])} |",
        f"| failover: kill -9 to the first acknowledged write (ms) | {_num(f['kill_to_first_write_ms'])} |",
        f"| switchover: write pause measured by sqld switchover (ms) | {_num(w['write_pause_ms'])} |",
        f"| switchover: longest gap between acknowledged writes (ms) | {_num(w['longest_gap_between_acks_ms'])} |",
    ]
