"""The servers a benchmark runs against, as child processes on loopback.

Three kinds: a throwaway PostgreSQL cluster (initdb in a temporary
directory, fsync and synchronous_commit on), a local sqld with its default
durable settings (or, with extra flags, a replication primary or replica),
and the no-op responder that measures the ceiling. Each
knows how to start, wait until it answers, report the process ids whose
memory counts as its own, and stop. `Processes` remembers every child so
that one `stop_all` (called from a `finally` and from signal handlers) leaves
nothing running.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

# How long a server may take to accept its first query.
READY_TIMEOUT_S = 60
# How long a server may take to exit after SIGTERM/SIGINT before SIGKILL.
STOP_TIMEOUT_S = 30
# The unprivileged account PostgreSQL runs under when we are root.
POSTGRES_ACCOUNT = "postgres"


class HarnessError(Exception):
    """A broken harness: a server that does not start, a query that fails."""


def free_port():
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Processes:
    """Every child process the harness started, for a clean stop."""

    def __init__(self, pid_file):
        # One pid per line: run.sh's EXIT trap kills whatever is left in it
        # if this process itself is killed before its `finally` runs.
        self.pid_file = pid_file
        self.children = []

    def spawn(self, argv, log_path, stop_signal=signal.SIGTERM, **kwargs):
        log = open(log_path, "ab")
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kwargs
        )
        log.close()
        self.children.append((proc, stop_signal))
        with open(self.pid_file, "a") as f:
            f.write(f"{proc.pid}\n")
        return proc

    def stop(self, proc):
        for i, (child, sig) in enumerate(self.children):
            if child is proc:
                del self.children[i]
                _stop(child, sig)
                return

    def stop_all(self):
        while self.children:
            child, sig = self.children.pop()
            _stop(child, sig)


def _stop(proc, sig):
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT_S)
    except ProcessLookupError:
        pass


def psql(server, sql=None, file=None, timeout=300):
    """Runs SQL through psql against `server`; returns stdout, raises on error."""
    argv = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", *server.conn_args()]
    if sql is not None:
        argv += ["-c", sql]
    if file is not None:
        argv += ["-f", file]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise HarnessError(f"psql against {server.name} failed: {res.stderr.strip()}")
    return res.stdout.strip()


def wait_ready(server, proc):
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HarnessError(f"{server.name} exited with {proc.returncode}; see {server.log}")
        res = subprocess.run(
            ["psql", "-X", "-A", "-t", *server.conn_args(), "-c", "SELECT 1"],
            capture_output=True,
            text=True,
            timeout=10,
            env={**os.environ, "PGCONNECT_TIMEOUT": "2"},
        )
        if res.returncode == 0:
            return
        last = res.stderr.strip()
        time.sleep(0.2)
    raise HarnessError(f"{server.name} not ready after {READY_TIMEOUT_S}s: {last}")


def children_of(pid):
    """Direct children of `pid` (PostgreSQL's backends and helpers)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces.
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def memory_kib(pids):
    """Summed RSS and PSS (KiB) of `pids`; processes that exited count 0."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            continue
    return rss, pss


class Postgres:
    name = "postgres"

    def __init__(self, procs, workdir, bin_dir):
        self.procs = procs
        self.bin_dir = bin_dir
        self.data = os.path.join(workdir, "pgdata")
        self.log = os.path.join(workdir, "postgres.log")
        self.port = free_port()
        self.proc = None

    def conn_args(self):
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres"]

    def _account(self):
        """Keyword arguments that run a command as the unprivileged account."""
        if os.geteuid() != 0:
            return {}
        pw = pwd.getpwnam(POSTGRES_ACCOUNT)
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def start(self):
        account = self._account()
        os.makedirs(self.data, mode=0o700)
        if account:
            shutil.chown(self.data, account["user"], account["group"])
        initdb = subprocess.run(
            [os.path.join(self.bin_dir, "initdb"), "-D", self.data, "-A", "trust",
             "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"],
            capture_output=True, text=True, timeout=120, cwd=self.data, **account,
        )
        if initdb.returncode != 0:
            raise HarnessError(f"initdb failed: {initdb.stderr.strip()}")
        # Durable defaults, spelled out so nobody wonders: every commit is
        # flushed to disk before it is acknowledged.
        self.proc = self.procs.spawn(
            [os.path.join(self.bin_dir, "postgres"), "-D", self.data,
             "-c", "listen_addresses=127.0.0.1", "-p", str(self.port),
             "-c", f"unix_socket_directories={self.data}",
             "-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "full_page_writes=on"],
            self.log,
            # SIGINT is PostgreSQL's "fast" shutdown.
            stop_signal=signal.SIGINT,
            cwd=self.data,
            **account,
        )
        wait_ready(self, self.proc)

    def pids(self):
        return [self.proc.pid, *children_of(self.proc.pid)]

    def version(self):
        return psql(self, "SHOW server_version")

    def after_load(self):
        # What a DBA (or autovacuum, a little later) would do after a bulk load.
        psql(self, "VACUUM ANALYZE")


class Sqld:
    """One sqld process; `name` keeps its data directory and log apart from
    other sqld processes in the same run (a primary and its replicas)."""

    def __init__(self, procs, workdir, binary, name="sqld", args=()):
        self.procs = procs
        self.binary = binary
        self.name = name
        self.args = list(args)
        self.data = os.path.join(workdir, f"{name}-data")
        self.log = os.path.join(workdir, f"{name}.log")
        self.port = free_port()
        self.http_port = free_port()
        self.proc = None

    def conn_args(self):
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", "sqld", "-d", "sqld"]

    def conninfo(self):
        """The libpq connection string, for psycopg."""
        return f"host=127.0.0.1 port={self.port} user=sqld dbname=sqld"

    def url(self):
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, extra_env=None, wait=True):
        self.proc = self.procs.spawn(
            [self.binary, "--dev", "--db-path", self.data,
             "--pg-listen-addr", f"127.0.0.1:{self.port}",
             "--http-listen-addr", f"127.0.0.1:{self.http_port}", *self.args],
            self.log,
            env={**os.environ, "SQLD_LOG": "warn", **(extra_env or {})},
        )
        if wait:
            wait_ready(self, self.proc)

    def http_status(self, path, timeout=5):
        """The HTTP status of GET `path`, or None while nothing listens."""
        try:
            with urllib.request.urlopen(self.url() + path, timeout=timeout) as res:
                return res.status
        except urllib.error.HTTPError as err:
            return err.code
        except (urllib.error.URLError, OSError):
            return None

    def metric(self, name):
        """One unlabelled value from /metrics, or None if it is not there."""
        with urllib.request.urlopen(self.url() + "/metrics", timeout=10) as res:
            for line in res.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return None

    def pids(self):
        return [self.proc.pid]

    def version(self):
        return psql(self, "SELECT version()")

    def after_load(self):
        pass


class Noop:
    name = "noop"

    def __init__(self, procs, workdir, binary):
        self.procs = procs
        self.binary = binary
        self.log = os.path.join(workdir, "noop.log")
        self.port = free_port()
        self.proc = None

    def conn_args(self):
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", "noop", "-d", "noop"]

    def start(self):
        self.proc = self.procs.spawn([self.binary, f"127.0.0.1:{self.port}"], self.log)
        wait_ready(self, self.proc)

    def pids(self):
        return [self.proc.pid]
