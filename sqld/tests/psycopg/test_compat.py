"""psycopg 3's own Postgres SQL against sqld: client-side binding (which
interpolates literals with `::` casts) and TypeInfo.fetch (which reads
pg_type through `::regtype` and `to_regtype`). Run by pytest beside
test_sqld.py, with the server named in SQLD_TEST_DSN.
"""

import datetime
import os

import psycopg
from psycopg.types import TypeInfo


def connect(**kwargs):
    return psycopg.connect(os.environ["SQLD_TEST_DSN"], connect_timeout=5, **kwargs)


def test_client_cursor_casts_convert():
    with connect(cursor_factory=psycopg.ClientCursor, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS compat_values")
        conn.execute(
            "CREATE TABLE compat_values (id INTEGER PRIMARY KEY, data BLOB, "
            "at TIMESTAMP, day DATE)"
        )
        at = datetime.datetime(2024, 1, 2, 3, 4, 5, 250000)
        day = datetime.date(2024, 1, 2)
        cur = conn.cursor()
        cur.execute(
            "INSERT INTO compat_values VALUES (%s, %s, %s, %s)",
            (1, b"\x00\xffA", at, day),
        )
        # What reached the server was '...'::bytea and friends.
        assert "::bytea" in cur._query.query.decode()
        row = conn.execute(
            "SELECT data, hex(data), at, day FROM compat_values"
        ).fetchone()
        assert bytes(row[0]) == b"\x00\xffA"
        assert row[1] == "00FF41"
        assert row[2] == at
        assert row[3] == day


def test_type_info_fetch():
    with connect() as conn:
        info = TypeInfo.fetch(conn, "int4")
        assert info is not None
        assert info.oid == 23
        assert info.array_oid == 1007
        assert TypeInfo.fetch(conn, "no_such_type") is None
