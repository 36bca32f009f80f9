#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/.

The seeds are valid messages plus edge cases, small enough to commit and
to replay in the test suite. Run from the repository root:

    python3 fuzz/make_seeds.py                 # every target but client_wire
    python3 fuzz/make_seeds.py --record-client # also record client_wire seeds

The client_wire seeds are a real server's answers to the exact call
sequence of fuzz/bodies/client_wire.rs: a recording proxy sits between the
built client library (driven through ctypes with that same sequence) and a
sqld started for the purpose (needs `cargo build -p sqld -p sqld-client`).
"""

import ctypes
import os
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- frontend messages -------------------------------------------------------

def msg(tag, body):
    return tag + struct.pack(">i", len(body) + 4) + body


def cstr(s):
    return s.encode() + b"\0"


def startup(params=(("user", "fuzz"), ("database", "sqld")), version=196608):
    body = struct.pack(">i", version) + b"".join(cstr(k) + cstr(v) for k, v in params) + b"\0"
    return struct.pack(">i", len(body) + 4) + body


SSL_REQUEST = struct.pack(">ii", 8, 80877103)
GSS_REQUEST = struct.pack(">ii", 8, 80877104)
CANCEL = struct.pack(">iiii", 16, 80877102, 1234, 5678)


def password(p):
    return msg(b"p", cstr(p))


def sasl_initial(mechanism, data):
    return msg(b"p", cstr(mechanism) + struct.pack(">i", len(data)) + data)


def sasl_response(data):
    return msg(b"p", data)


def query(sql):
    return msg(b"Q", cstr(sql))


def parse(name, sql, oids=()):
    return msg(b"P", cstr(name) + cstr(sql) + struct.pack(">h", len(oids))
               + b"".join(struct.pack(">I", o) for o in oids))


def bind(portal, stmt, formats, params, result_formats=()):
    body = cstr(portal) + cstr(stmt)
    body += struct.pack(">h", len(formats)) + b"".join(struct.pack(">h", f) for f in formats)
    body += struct.pack(">h", len(params))
    for p in params:
        body += struct.pack(">i", -1) if p is None else struct.pack(">i", len(p)) + p
    body += struct.pack(">h", len(result_formats)) + b"".join(struct.pack(">h", f) for f in result_formats)
    return msg(b"B", body)


def describe(kind, name):
    return msg(b"D", kind + cstr(name))


def execute(portal, limit=0):
    return msg(b"E", cstr(portal) + struct.pack(">i", limit))


def close(kind, name):
    return msg(b"C", kind + cstr(name))


SYNC = msg(b"S", b"")
FLUSH = msg(b"H", b"")
TERMINATE = msg(b"X", b"")

INT8, TEXT, BYTEA, BOOL, FLOAT8, NUMERIC, DATE, TIMESTAMP, JSONB = 20, 25, 17, 16, 701, 1700, 1082, 1114, 3802

EXTENDED = (parse("s1", "select $1, $2, $3, $4", (INT8, TEXT, BYTEA, BOOL))
            + bind("p1", "s1", (1, 0, 1, 1), (struct.pack(">q", 42), b"hello", b"\x00\xff", b"\x01"), (1,))
            + describe(b"P", "p1") + execute("p1", 10) + SYNC
            + bind("", "s1", (0,), (b"7", b"x", b"\\x00", b"t")) + execute("") + FLUSH
            + close(b"S", "s1") + close(b"P", "p1") + SYNC)
CLIENT_FIRST = b"n,,n=,r=rOprNGfwEbeRWgbNEkqO"
CLIENT_FINAL = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="


def pg_startup():
    scram, cleartext, trust = b"\x00", b"\x01", b"\x02"
    t = "pg_startup"
    write(t, "scram-startup", scram + startup())
    write(t, "scram-exchange", scram + startup() + sasl_initial("SCRAM-SHA-256", CLIENT_FIRST)
          + sasl_response(CLIENT_FINAL))
    write(t, "scram-unknown-mechanism", scram + startup() + sasl_initial("SCRAM-SHA-1", CLIENT_FIRST))
    write(t, "scram-empty-initial-data", scram + startup() + sasl_initial("SCRAM-SHA-256", b""))
    write(t, "cleartext-ok-then-queries", cleartext + startup() + password("secret")
          + query("select 1") + EXTENDED + TERMINATE)
    write(t, "cleartext-wrong", cleartext + startup() + password("nope"))
    write(t, "cleartext-unknown-user", cleartext + startup((("user", "nobody"),)) + password("secret"))
    write(t, "trust-session", trust + startup() + query("select 1; select 2") + EXTENDED + TERMINATE)
    write(t, "trust-no-user", trust + startup(()))
    write(t, "trust-protocol-3-2", trust + startup(version=196610) + TERMINATE)
    write(t, "trust-protocol-2", trust + startup(version=131072))
    write(t, "trust-options", trust + startup((("user", "fuzz"), ("options", "-c x=y"),
                                               ("sqld.sqlite_api", "on"), ("application_name", "a" * 200))))
    write(t, "cancel-request", trust + CANCEL)
    write(t, "gss-request", trust + GSS_REQUEST + startup())
    write(t, "negative-length", scram + struct.pack(">i", -1) + b"\0" * 8)
    write(t, "oversized-startup", scram + struct.pack(">i", 20000) + b"\0" * 16)
    write(t, "oversized-message", cleartext + startup() + b"p" + struct.pack(">i", 1 << 30))
    write(t, "http-probe", trust + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    write(t, "truncated-startup", trust + startup()[:9])
    write(t, "empty", b"")


def pg_messages():
    t = "pg_messages"
    # bit 0: start before the SSL negotiation; bit 1: authenticated after startup
    write(t, "auth-password", b"\x00" + startup() + password("secret"))
    write(t, "auth-sasl", b"\x04" + startup() + sasl_initial("SCRAM-SHA-256", CLIENT_FIRST)
          + sasl_response(CLIENT_FINAL))
    write(t, "auth-sasl-empty-data", b"\x04" + startup() + msg(b"p", cstr("SCRAM-SHA-256") + struct.pack(">i", 0)))
    write(t, "auth-sasl-no-data", b"\x04" + startup() + msg(b"p", cstr("SCRAM-SHA-256") + struct.pack(">i", -1)))
    write(t, "ssl-then-startup", b"\x01" + SSL_REQUEST + startup() + password("x"))
    write(t, "ssl-then-session", b"\x03" + SSL_REQUEST + startup() + query("select 1"))
    write(t, "simple", b"\x02" + startup() + query("select 1") + query("") + TERMINATE)
    write(t, "extended", b"\x02" + startup() + EXTENDED)
    write(t, "extended-binary-types", b"\x02" + startup()
          + parse("", "select $1,$2,$3,$4,$5", (FLOAT8, NUMERIC, DATE, TIMESTAMP, JSONB))
          + bind("", "", (1,), (struct.pack(">d", 2.5), struct.pack(">hhhhh", 1, 0, 0, 0, 42),
                                 struct.pack(">i", 0), struct.pack(">q", 0), b"\x01{}"))
          + SYNC)
    write(t, "bind-nulls", b"\x02" + startup() + parse("", "select $1", (0,)) + bind("", "", (), (None,)) + SYNC)
    write(t, "copy-messages", b"\x02" + startup() + msg(b"d", b"1\t2\n") + msg(b"c", b"")
          + msg(b"f", cstr("stop")))
    write(t, "unknown-tag", b"\x02" + startup() + msg(b"?", b"x"))
    write(t, "cancel", b"\x00" + CANCEL)


def bind_params():
    t = "bind_params"
    seeds = {
        "int8": struct.pack(">q", -42), "int4": struct.pack(">i", 7), "int2": struct.pack(">h", -1),
        "bool": b"\x01", "float8": struct.pack(">d", 1.5), "float4": struct.pack(">f", -0.5),
        "text-int": b" 123 ", "text-float": b"-1e308", "text-inf": b"-Infinity", "text-nan": b"NaN",
        "text-bool": b"yes", "bytea-hex": b"\\x00ff10", "bytea-escape": b"a\\\\b\\000",
        "date-text": b"2024-02-29", "timestamp": struct.pack(">q", 1 << 40),
        "timestamp-min": struct.pack(">q", -(1 << 63)), "date-max": struct.pack(">i", 0x7FFFFFFF),
        "jsonb": b"\x01{\"a\": [1, 2]}", "json": b"{}", "utf8": "h\u00e9llo \u2603".encode(),
        "invalid-utf8": b"\xff\xfe", "empty": b"",
        "numeric-42": struct.pack(">hhhhh", 1, 0, 0, 0, 42),
        "numeric-neg-frac": struct.pack(">hhhhhh", 2, 0, 0x4000, 4, 3, 1415),
        "numeric-nan": struct.pack(">hhHh", 0, 0, 0xC000, 0),
        "numeric-small": struct.pack(">hhhhh", 1, -2, 0, 8, 1234),
        "numeric-big-weight": struct.pack(">hhhhh", 1, 100, 0, 0, 9999),
        "numeric-short": struct.pack(">hh", 3, 0),
    }
    for name, data in seeds.items():
        write(t, name, data)


# --- replication ---------------------------------------------------------------

PAGE = 4096


def frame(frame_no, page_no, size_after, page):
    assert len(page) == PAGE
    head = struct.pack(">QII", frame_no, page_no, size_after)
    return head + struct.pack(">I", zlib.crc32(head + page) & 0xFFFFFFFF) + page


def sample_db(wal):
    d = tempfile.mkdtemp()
    path = os.path.join(d, "x.db")
    c = sqlite3.connect(path)
    c.execute("PRAGMA page_size=4096")
    if wal:
        c.execute("PRAGMA journal_mode=WAL")
    c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    c.executemany("INSERT INTO t VALUES (?, ?)", [(i, "v%d" % i) for i in range(20)])
    c.commit()
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)") if wal else None
    c.close()
    data = open(path, "rb").read()
    shutil.rmtree(d)
    return data


def replica_wire():
    t = "replica_wire"
    write(t, "info", b"\x00" + b'{"log_id":"3f2a","current_frame_no":12,"snapshot_frame_no":4}')
    write(t, "info-huge-numbers", b"\x00" + b'{"log_id":"","current_frame_no":18446744073709551615,"snapshot_frame_no":0}')
    write(t, "info-wrong-types", b"\x00" + b'{"log_id":7,"current_frame_no":-1}')
    db = sample_db(wal=True)
    pages = [db[i:i + PAGE] for i in range(0, len(db), PAGE)]
    n = len(pages)
    batch = b"".join(frame(i + 1, i + 1, n if i == n - 1 else 0, p) for i, p in enumerate(pages))
    write(t, "batch-valid", b"\x01" + batch)
    write(t, "batch-bad-crc", b"\x01" + batch[:30] + bytes([batch[30] ^ 1]) + batch[31:])
    write(t, "batch-truncated", b"\x01" + batch[:PAGE])
    write(t, "batch-no-commit", b"\x01" + frame(1, 1, 0, pages[0]))
    pairs = b"".join(struct.pack(">BB", i + 1, n if i == n - 1 else 0) for i in range(n))
    write(t, "hostile-valid-db", b"\x02" + bytes([n - 1]) + pairs + b"".join(pages))
    write(t, "hostile-garbage-page", b"\x02" + b"\x00" + b"\x01\x01" + b"SQLite format 3\0" + b"\xff" * 100)
    write(t, "hostile-page-zero", b"\x02" + b"\x01" + b"\x00\x01\x02\x02" + pages[0])
    write(t, "snapshot-wal-db", b"\x03" + db)
    write(t, "snapshot-rollback-db", b"\x03" + sample_db(wal=False))
    write(t, "snapshot-header-only", b"\x03" + db[:100])
    write(t, "empty", b"")


def operator_spec():
    t = "operator_spec"
    examples = os.path.join(ROOT, "deploy", "examples")
    for name in sorted(os.listdir(examples)):
        if name.endswith(".yaml"):
            write(t, "example-" + name[:-5], open(os.path.join(examples, name), "rb").read())
    head = "apiVersion: sqld.dev/v1alpha1\nkind: SqldCluster\nmetadata:\n  name: %s\n  namespace: default\n"
    write(t, "negative-replicas", (head % "neg" + "spec:\n  replicas: -3\n").encode())
    write(t, "long-name", (head % ("a" * 70) + "spec: {}\n").encode())
    write(t, "bad-quantity", (head % "q" + "spec:\n  storage:\n    size: 12XYZ\n").encode())
    write(t, "wrong-types", (head % "w" + "spec:\n  replicas: many\n  storage: 5\n").encode())
    write(t, "reserved-flag", (head % "r" + "spec:\n  extraArgs: [\"--db-path\", \"/etc\"]\n").encode())
    write(t, "json", b'{"apiVersion":"sqld.dev/v1alpha1","kind":"SqldCluster",'
          b'"metadata":{"name":"j","namespace":"default"},"spec":{"replicas":2}}')
    write(t, "no-metadata", b"apiVersion: sqld.dev/v1alpha1\nkind: SqldCluster\nspec: {}\n")
    write(t, "two-documents", (head % "a" + "spec: {}\n---\n" + head % "b" + "spec:\n  replicas: 1\n").encode())
    write(t, "other-kind", b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")
    write(t, "yaml-anchors", (head % "y" + "spec: &s {replicas: 1}\nextra: *s\n").encode())
    write(t, "empty", b"")


# --- client wire -------------------------------------------------------------------

QUERY = b"SELECT ?1, 2.5, 'text', x'00ff', NULL"
EXEC = b"CREATE TABLE IF NOT EXISTS fuzz(x); INSERT INTO fuzz VALUES (1)"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def record_proxy(upstream):
    """Accepts one connection, forwards it to `upstream`, and returns
    (port, thread, recorded) where recorded collects what the server sent
    after the client's startup packet (the fake server of client_wire
    sends its script at that point)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    recorded = bytearray()

    def pump(src, dst, record):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            if record is not None:
                record.extend(data)
            dst.sendall(data)

    def run():
        client, _ = listener.accept()
        server = socket.create_connection(upstream)
        a = threading.Thread(target=pump, args=(client, server, None))
        b = threading.Thread(target=pump, args=(server, client, recorded))
        a.start(); b.start(); a.join(); b.join()
        client.close(); server.close(); listener.close()

    th = threading.Thread(target=run)
    th.start()
    return listener.getsockname()[1], th, recorded


def drive_client(lib, port, user, password):
    """The call sequence of fuzz/bodies/client_wire.rs."""
    c = ctypes
    lib.sqlite3_column_text.restype = c.c_char_p
    lib.sqlite3_column_int64.restype = c.c_int64
    lib.sqlite3_column_double.restype = c.c_double
    lib.sqlite3_column_blob.restype = c.c_void_p
    lib.sqlite3_column_name.restype = c.c_char_p
    lib.sqlite3_column_decltype.restype = c.c_char_p
    lib.sqlite3_bind_int64.argtypes = [c.c_void_p, c.c_int, c.c_int64]
    for f in ("sqlite3_column_type", "sqlite3_column_int64", "sqlite3_column_double", "sqlite3_column_text",
              "sqlite3_column_blob", "sqlite3_column_bytes", "sqlite3_column_name", "sqlite3_column_decltype"):
        getattr(lib, f).argtypes = [c.c_void_p, c.c_int]
    for f in ("sqlite3_step", "sqlite3_finalize", "sqlite3_column_count"):
        getattr(lib, f).argtypes = [c.c_void_p]
    for f in ("sqlite3_close", "sqlite3_changes", "sqlite3_get_autocommit", "sqlite3_errmsg",
              "sqlite3_last_insert_rowid"):
        getattr(lib, f).argtypes = [c.c_void_p]
    db = c.c_void_p()
    auth = user + ((":" + password) if password else "")
    url = ("postgres://%s@127.0.0.1:%d/sqld?sslmode=disable" % (auth, port)).encode()
    if lib.sqlite3_open_v2(url, c.byref(db), 6, None) == 0:
        stmt = c.c_void_p()
        if lib.sqlite3_prepare_v2(db, QUERY, -1, c.byref(stmt), None) == 0 and stmt:
            lib.sqlite3_bind_int64(stmt, 1, 42)
            while lib.sqlite3_step(stmt) == 100:
                n = lib.sqlite3_column_count(stmt)
                for i in range(-1, n + 1):
                    for f in ("sqlite3_column_type", "sqlite3_column_name", "sqlite3_column_decltype",
                              "sqlite3_column_int64", "sqlite3_column_double", "sqlite3_column_text",
                              "sqlite3_column_bytes", "sqlite3_column_blob", "sqlite3_column_bytes"):
                        getattr(lib, f)(stmt, i)
            lib.sqlite3_finalize(stmt)
        lib.sqlite3_exec(db, EXEC, None, None, None)
        lib.sqlite3_changes(db)
        lib.sqlite3_last_insert_rowid(db)
        lib.sqlite3_get_autocommit(db)
    lib.sqlite3_errmsg(db)
    lib.sqlite3_close(db)


def record_client():
    t = "client_wire"
    sqld = os.path.join(ROOT, "target", "debug", "sqld")
    lib = ctypes.CDLL(os.path.join(ROOT, "target", "debug", "libsqlite3.so"))
    for auth, name in (("trust", "trust"), ("cleartext", "cleartext"), ("password", "scram")):
        d = tempfile.mkdtemp()
        pg, http = free_port(), free_port()
        env = dict(os.environ, SQLD_PASSWORD="secret", SQLD_USER="fuzz", SQLD_LOG="error")
        p = subprocess.Popen([sqld, "--db-path", d + "/db", "--auth", auth, "--pg-listen-addr",
                              "127.0.0.1:%d" % pg, "--http-listen-addr", "127.0.0.1:%d" % http], env=env)
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", pg)).close()
                    break
                except OSError:
                    time.sleep(0.05)
            port, th, recorded = record_proxy(("127.0.0.1", pg))
            drive_client(lib, port, "fuzz", "secret")
            th.join(10)
            write(t, "session-" + name, bytes(recorded))
        finally:
            p.kill()
            p.wait()
            shutil.rmtree(d)
    ok = (msg(b"R", struct.pack(">i", 0)) + msg(b"S", b"server_version\x0015.0\x00")
          + msg(b"K", struct.pack(">ii", 1, 2)) + msg(b"Z", b"I"))
    write(t, "auth-ok-only", ok)
    write(t, "error-at-startup", msg(b"E", b"SFATAL\0C28P01\0Mno\0\0"))
    write(t, "md5-request", msg(b"R", struct.pack(">i", 5) + b"salt"))
    write(t, "sasl-other-mechanism", msg(b"R", struct.pack(">i", 10) + b"SCRAM-SHA-1\0\0"))
    write(t, "sasl-continue-garbage", msg(b"R", struct.pack(">i", 10) + b"SCRAM-SHA-256\0\0")
          + msg(b"R", struct.pack(">i", 11) + b"r=zz,s=,i=0"))
    write(t, "truncated", ok[:11])
    write(t, "huge-length", b"Z" + struct.pack(">i", 0x7FFFFFF0))
    write(t, "empty", b"")


if __name__ == "__main__":
    pg_startup()
    pg_messages()
    bind_params()
    replica_wire()
    operator_spec()
    if "--record-client" in sys.argv:
        record_client()
