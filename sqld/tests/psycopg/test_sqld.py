"""psycopg 3 against a running sqld.

The server is named by the SQLD_TEST_DSN environment variable (the Rust
test `sqld/tests/psycopg.rs` starts one and sets it). Runs under pytest
(`python3 -m pytest -q sqld/tests/psycopg`) or on its own
(`python3 sqld/tests/psycopg/test_sqld.py`), so pytest is optional;
psycopg is not: without it every test fails.
"""

import os
import sys
import threading
import time

try:
    import psycopg
    from psycopg import errors
    from psycopg.pq import TransactionStatus
except ImportError as e:  # pragma: no cover - reported, never skipped
    raise SystemExit(
        f"psycopg 3 is not installed ({e}); install it with: "
        'pip install "psycopg[binary]"'
    )


def dsn():
    value = os.environ.get("SQLD_TEST_DSN")
    if not value:
        raise RuntimeError("SQLD_TEST_DSN is not set: it names the sqld to test")
    return value


def connect(**kwargs):
    return psycopg.connect(dsn(), connect_timeout=5, **kwargs)


VALUES_TABLE = """
CREATE TABLE {name} (
    id INTEGER PRIMARY KEY,
    i INTEGER,
    f REAL,
    s TEXT,
    b BLOB,
    n TEXT,
    flag BOOLEAN
)
"""

ROWS = [
    (1, 42, 1.5, "héllo, wörld", b"\x00\x01\xfe\xff", None, True),
    (2, -(2**40), -0.25, "", b"", None, False),
    (3, 0, 1e300, "it's \"quoted\"", bytes(range(256)), None, None),
]


def test_server_reports_sqld():
    with connect() as conn:
        assert "sqld" in conn.info.parameter_status("server_version")
        assert conn.info.server_version == 150000
        version = conn.execute("SELECT version()").fetchone()[0]
        assert "sqld" in version


def test_parameters_of_each_type_round_trip():
    with connect() as conn:
        conn.execute(VALUES_TABLE.format(name="values_text"))
        cur = conn.cursor()
        for row in ROWS:
            cur.execute(
                "INSERT INTO values_text VALUES (%s, %s, %s, %s, %s, %s, %s)", row
            )
        conn.commit()
        cur.execute("SELECT id, i, f, s, b, n, flag FROM values_text ORDER BY id")
        got = cur.fetchall()
        assert got == ROWS
        assert [type(v) for v in got[0]] == [int, int, float, str, bytes, type(None), bool]

        # Parameters in a WHERE clause, of each kind.
        assert cur.execute("SELECT id FROM values_text WHERE i = %s", (-(2**40),)).fetchone() == (2,)
        assert cur.execute("SELECT id FROM values_text WHERE f > %s", (1.0,)).fetchall() == [(1,), (3,)]
        assert cur.execute("SELECT id FROM values_text WHERE s = %s", ("héllo, wörld",)).fetchone() == (1,)
        assert cur.execute("SELECT id FROM values_text WHERE b = %s", (bytes(range(256)),)).fetchone() == (3,)
        assert cur.execute("SELECT id FROM values_text WHERE flag = %s", (False,)).fetchone() == (2,)
        assert cur.execute("SELECT count(*) FROM values_text WHERE n IS %s", (None,)).fetchone() == (3,)


def test_binary_cursor():
    with connect() as conn:
        conn.execute(VALUES_TABLE.format(name="values_binary"))
        cur = conn.cursor(binary=True)
        cur.executemany(
            "INSERT INTO values_binary VALUES (%s, %s, %s, %s, %s, %s, %s)", ROWS
        )
        conn.commit()
        cur.execute("SELECT id, i, f, s, b, n, flag FROM values_binary ORDER BY id")
        assert cur.fetchall() == ROWS
        assert cur.pgresult.fformat(0) == 1, "results should come back in binary"
        cur.execute("SELECT s FROM values_binary WHERE id = %s", (1,))
        assert cur.fetchone() == ("héllo, wörld",)


def test_executemany_and_fetchall():
    with connect() as conn:
        cur = conn.cursor()
        cur.execute("CREATE TABLE many (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        cur.executemany(
            "INSERT INTO many (id, name) VALUES (%s, %s)",
            [(i, f"name-{i}") for i in range(1, 501)],
        )
        conn.commit()
        cur.execute("SELECT id, name FROM many WHERE id <= %s ORDER BY id", (3,))
        assert cur.fetchall() == [(1, "name-1"), (2, "name-2"), (3, "name-3")]
        cur.execute("SELECT count(*), sum(id) FROM many")
        assert cur.fetchone() == (500, 500 * 501 // 2)
        cur.execute("SELECT id FROM many ORDER BY id")
        assert cur.fetchmany(2) == [(1,), (2,)]
        assert len(cur.fetchall()) == 498


def test_transaction_commit_and_rollback():
    with connect() as conn:
        conn.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER)")
        conn.commit()

        with conn.transaction():
            conn.execute("INSERT INTO ledger VALUES (%s, %s)", (1, 100))
            conn.execute("INSERT INTO ledger VALUES (%s, %s)", (2, 200))

        class Undo(Exception):
            pass

        try:
            with conn.transaction():
                conn.execute("INSERT INTO ledger VALUES (%s, %s)", (3, 300))
                raise Undo()
        except Undo:
            pass

        # A nested block is a savepoint: its rollback keeps the outer work.
        with conn.transaction():
            conn.execute("INSERT INTO ledger VALUES (%s, %s)", (4, 400))
            try:
                with conn.transaction():
                    conn.execute("INSERT INTO ledger VALUES (%s, %s)", (5, 500))
                    raise Undo()
            except Undo:
                pass

        conn.commit()
        with connect() as other:
            rows = other.execute("SELECT id, amount FROM ledger ORDER BY id").fetchall()
        assert rows == [(1, 100), (2, 200), (4, 400)]


def test_unique_violation_leaves_connection_usable():
    with connect() as conn:
        conn.execute("CREATE TABLE uniq (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO uniq VALUES (%s, %s)", (1, "one"))
        conn.commit()

        try:
            conn.execute("INSERT INTO uniq VALUES (%s, %s)", (1, "again"))
        except psycopg.IntegrityError as e:
            assert isinstance(e, errors.UniqueViolation)
            assert e.sqlstate == "23505"
        else:
            raise AssertionError("a duplicate key must fail")

        # Like Postgres, the rest of the transaction is refused...
        assert conn.info.transaction_status == TransactionStatus.INERROR
        try:
            conn.execute("SELECT 1")
        except errors.InFailedSqlTransaction as e:
            assert e.sqlstate == "25P02"
        else:
            raise AssertionError("statements in a failed transaction must fail")

        # ...until ROLLBACK, after which the connection works.
        conn.rollback()
        assert conn.info.transaction_status == TransactionStatus.IDLE
        conn.execute("INSERT INTO uniq VALUES (%s, %s)", (2, "two"))
        conn.commit()
        assert conn.execute("SELECT v FROM uniq ORDER BY id").fetchall() == [("one",), ("two",)]


def test_connection_execute_fetchone():
    with connect() as conn:
        assert conn.execute("SELECT 1 + 1").fetchone() == (2,)
        assert conn.execute("SELECT %s || %s", ("a", "b")).fetchone() == ("ab",)
        assert conn.execute("SELECT 1 WHERE 0").fetchone() is None
        cur = conn.execute("SELECT 3 AS three, 'x' AS ex")
        assert [d.name for d in cur.description] == ["three", "ex"]
        assert cur.fetchone() == (3, "x")


def test_autocommit_mode():
    with connect(autocommit=True) as auto, connect() as reader:
        assert auto.autocommit
        auto.execute("CREATE TABLE auto (id INTEGER PRIMARY KEY)")
        auto.execute("INSERT INTO auto VALUES (%s)", (1,))
        assert auto.info.transaction_status == TransactionStatus.IDLE
        # Visible to another session without a commit.
        assert reader.execute("SELECT count(*) FROM auto").fetchone() == (1,)
        reader.rollback()

        # Without autocommit psycopg opens a transaction; others see
        # nothing until it commits.
        with connect() as manual:
            manual.execute("INSERT INTO auto VALUES (%s)", (2,))
            assert manual.info.transaction_status == TransactionStatus.INTRANS
            assert reader.execute("SELECT count(*) FROM auto").fetchone() == (1,)
            reader.rollback()
            manual.commit()
        assert reader.execute("SELECT count(*) FROM auto").fetchone() == (2,)
        reader.rollback()

        # An explicit transaction block in autocommit mode.
        with auto.transaction():
            auto.execute("INSERT INTO auto VALUES (%s)", (3,))
            assert auto.info.transaction_status == TransactionStatus.INTRANS
        assert auto.execute("SELECT count(*) FROM auto").fetchone() == (3,)


def test_error_in_autocommit_does_not_poison():
    with connect(autocommit=True) as conn:
        try:
            conn.execute("SELECT * FROM no_such_table")
        except errors.UndefinedTable as e:
            assert e.sqlstate == "42P01"
        else:
            raise AssertionError("missing table must fail")
        assert conn.execute("SELECT 1").fetchone() == (1,)


# A parameterised write inside a transaction waits for another session's
# write lock and then commits, as in Postgres: parsing the statement must
# not take a read snapshot that SQLite could not upgrade.
def test_writer_in_transaction_waits_for_other_writer():
    with connect() as setup:
        setup.execute("CREATE TABLE contended (id INTEGER PRIMARY KEY, n INTEGER)")
        setup.execute("INSERT INTO contended VALUES (1, 0), (2, 0)")
        setup.commit()

    with connect() as holder, connect() as waiter:
        # The holder's open transaction has the write lock.
        holder.execute("UPDATE contended SET n = n + 1 WHERE id = 1")
        release = threading.Timer(0.5, holder.commit)
        release.start()
        try:
            started = time.monotonic()
            with waiter.transaction():
                waiter.execute("UPDATE contended SET n = n + %s WHERE id = %s", (1, 2))
            waited = time.monotonic() - started
        finally:
            release.join()
        assert waited >= 0.3, f"the second writer should have waited, not {waited:.3f}s"
        assert waiter.execute("SELECT n FROM contended ORDER BY id").fetchall() == [(1,), (1,)]


def _main():
    """Runs every test_ function when pytest is not used."""
    tests = [(name, fn) for name, fn in globals().items() if name.startswith("test_") and callable(fn)]
    failed = []
    for name, fn in tests:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report every failure
            failed.append(name)
            print(f"FAILED {name}: {type(e).__name__}: {e}", flush=True)
        else:
            print(f"ok     {name}", flush=True)
    print(f"{len(tests) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_main())
