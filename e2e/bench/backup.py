#!/usr/bin/env python3
"""Continuous backup figures, measured against a moto S3 server on loopback:

- commit rate of single-row UPDATEs and INSERTs (pgbench, 8 clients) on a
  primary archiving to S3 and on one that is not, side by side in one run;
- archive lag (frames and seconds, sampled from /metrics) at a steady
  write rate;
- restore throughput of a ~100 MB database from S3 (`--restore-only`: just
  that; `--compare OTHER_SQLD`: the same store restored by both binaries in
  turn, `--rounds` times each).

    python3 e2e/bench/backup.py [--sqld target/release/sqld] [--seconds 10]
        [--rate 500] [--restore-mb 100] [--restore-only] [--compare SQLD]
        [--rounds 2]
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

BUCKET = "bench"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port}")


class Sqld:
    def __init__(self, binary, root, name, env, extra):
        self.pg, self.http = free_port(), free_port()
        self.dir = os.path.join(root, name)
        self.proc = subprocess.Popen(
            [binary, "--dev", "--db-path", self.dir,
             "--pg-listen-addr", f"127.0.0.1:{self.pg}",
             "--http-listen-addr", f"127.0.0.1:{self.http}", *extra],
            env={**os.environ, **env, "SQLD_LOG": "warn"})
        wait_port(self.pg, name)
        wait_port(self.http, name)

    def metric(self, name):
        body = urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics").read().decode()
        m = re.search(rf"^{name} (\S+)$", body, re.M)
        return float(m.group(1)) if m else 0.0

    def psql(self, sql):
        subprocess.run(["psql", "-q", "-h", "127.0.0.1", "-p", str(self.pg), "-U", "sqld",
                        "-d", "sqld", "-c", sql], check=True, stdout=subprocess.DEVNULL)

    def pgbench(self, script, seconds, clients=8, rate=None):
        args = ["pgbench", "-n", "-h", "127.0.0.1", "-p", str(self.pg), "-U", "sqld",
                "-c", str(clients), "-j", "2", "-T", str(seconds), "-f", script, "sqld"]
        if rate:
            args += ["-R", str(rate)]
        out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
        return float(re.search(r"tps = ([\d.]+)", out).group(1))

    def wait_archived(self, timeout=120):
        head = self.metric("sqld_replication_frame_no")
        deadline = time.time() + timeout
        while self.metric("sqld_backup_archived_frame_no") < head:
            if time.time() > deadline:
                raise SystemExit("archive did not catch up")
            time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def restore_bench(a, root, env):
    print(f"## restore of a ~{a.restore_mb} MB database from S3")
    big = Sqld(a.sqld, root, "big", env, ["--backup-url", f"s3://{BUCKET}/big"])
    big.psql("CREATE TABLE blobs(id INTEGER PRIMARY KEY, data BLOB, note TEXT)")
    rows = a.restore_mb * 1024 // 4
    for start in range(0, rows, 2000):
        # Half random bytes (incompressible), half repetitive text.
        big.psql(f"WITH RECURSIVE n(i) AS (SELECT {start} UNION ALL SELECT i + 1 FROM n WHERE i < {min(rows, start + 2000) - 1}) "
                 "INSERT INTO blobs SELECT i, randomblob(2048), printf('%.2000c', 'x') FROM n")
    big.wait_archived(1800)
    uploaded = big.metric("sqld_backup_bytes_uploaded_total")
    big.stop()
    size = os.path.getsize(os.path.join(big.dir, "data.db"))
    print(f"database {size / 1e6:.1f} MB, uploaded {uploaded / 1e6:.1f} MB compressed")
    binaries = [a.sqld] + ([a.compare] if a.compare else [])
    for round_no in range(a.rounds):
        for binary in binaries:
            target = os.path.join(root, "restored")
            shutil.rmtree(target, ignore_errors=True)
            started = time.time()
            out = subprocess.run([binary, "restore", "--from", f"s3://{BUCKET}/big", "--db-path", target],
                                 env={**os.environ, **env}, check=True, capture_output=True, text=True).stdout
            elapsed = time.time() - started
            restored = os.path.getsize(os.path.join(target, "data.db"))
            print(f"{binary} (round {round_no + 1}): restored {restored / 1e6:.1f} MB in {elapsed:.2f} s "
                  f"= {restored / 1e6 / elapsed:.1f} MB/s")
            print("  " + out.strip().replace("\n", "\n  "))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sqld", default="target/release/sqld")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--restore-mb", type=int, default=100)
    ap.add_argument("--restore-only", action="store_true")
    ap.add_argument("--compare", help="another sqld binary restoring the same store")
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()

    root = tempfile.mkdtemp(prefix="sqld-backup-bench-")
    moto_port = free_port()
    moto = subprocess.Popen(["python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(moto_port, "moto")
        urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{moto_port}/{BUCKET}", method="PUT")).read()
        env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}", "AWS_ACCESS_KEY_ID": "x",
               "AWS_SECRET_ACCESS_KEY": "x", "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
        if not a.restore_only:
            on = Sqld(a.sqld, root, "on", env, ["--backup-url", f"s3://{BUCKET}/on"])
            off = Sqld(a.sqld, root, "off", env, [])
            scripts = {}
            for name, sql in [
                ("update", "\\set aid random(1, 100000)\nUPDATE accounts SET abalance = abalance + 1 WHERE aid = :aid;\n"),
                ("insert", "INSERT INTO history(aid, delta) VALUES (1, 1);\n"),
            ]:
                path = os.path.join(root, name + ".sql")
                with open(path, "w") as f:
                    f.write(sql)
                scripts[name] = path
            for s in (on, off):
                s.psql("CREATE TABLE accounts(aid INTEGER PRIMARY KEY, abalance INTEGER, filler TEXT)")
                s.psql("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) "
                       "INSERT INTO accounts SELECT i, 0, printf('%84s', '') FROM n")
                s.psql("CREATE TABLE history(id INTEGER PRIMARY KEY, aid INTEGER, delta INTEGER)")
            on.wait_archived()

            print("## commit rate, 8 clients, %d s each, alternating (tps)" % a.seconds)
            for workload in ("update", "insert"):
                rates = {"on": [], "off": []}
                for _ in range(2):
                    for label, s in (("on", on), ("off", off)):
                        rates[label].append(s.pgbench(scripts[workload], a.seconds))
                print(f"{workload}: archiving on {rates['on']} / off {rates['off']}")

            print(f"## archive lag at {a.rate} updates/s (1 s interval), {a.seconds * 2} s")
            on.wait_archived()
            samples = []
            bench = subprocess.Popen(["pgbench", "-n", "-h", "127.0.0.1", "-p", str(on.pg), "-U", "sqld",
                                      "-c", "4", "-j", "2", "-T", str(a.seconds * 2), "-R", str(a.rate),
                                      "-f", scripts["update"], "sqld"], stdout=subprocess.DEVNULL)
            time.sleep(1)
            while bench.poll() is None:
                samples.append((on.metric("sqld_backup_lag_frames"), on.metric("sqld_backup_lag_seconds")))
                time.sleep(0.1)
            frames = sorted(s[0] for s in samples)
            secs = sorted(s[1] for s in samples)
            pct = lambda v, p: v[min(len(v) - 1, int(len(v) * p))]
            print(f"lag frames median {pct(frames, .5):.0f} p99 {pct(frames, .99):.0f} max {frames[-1]:.0f}; "
                  f"lag seconds median {pct(secs, .5):.2f} p99 {pct(secs, .99):.2f} max {secs[-1]:.2f} "
                  f"({len(samples)} samples)")
            off.stop()
            on.stop()
        restore_bench(a, root, env)
    finally:
        moto.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
