"""psycopg 3's server-side (named) cursors, cursor.stream and SQL-level
PREPARE/EXECUTE against sqld. Run by pytest beside test_sqld.py, with the
server named in SQLD_TEST_DSN.
"""

import os

import psycopg
import pytest

ROWS = 250


def connect(**kwargs):
    return psycopg.connect(os.environ["SQLD_TEST_DSN"], connect_timeout=5, **kwargs)


@pytest.fixture(scope="module")
def table():
    with connect(autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS cursor_rows")
        conn.execute("CREATE TABLE cursor_rows (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute(
            "INSERT INTO cursor_rows WITH RECURSIVE s(v) AS "
            f"(SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < {ROWS}) "
            "SELECT v, 'row ' || v FROM s"
        )
    return "cursor_rows"


def test_named_cursor_iterates_in_pages_of_itersize(table):
    with connect() as conn:
        with conn.cursor(name="pages") as cur:
            cur.itersize = 40
            cur.execute(f"SELECT id, name FROM {table} WHERE id > %s ORDER BY id", (10,))
            assert [c.name for c in cur.description] == ["id", "name"]
            assert cur.description[0].type_code == psycopg.adapters.types["int8"].oid
            rows = list(cur)
        assert rows == [(i, f"row {i}") for i in range(11, ROWS + 1)]
        conn.commit()


def test_named_cursor_fetchone_fetchmany_and_fetchall(table):
    with connect() as conn:
        cur = conn.cursor(name="Mixed Name")
        cur.execute(f"SELECT id FROM {table} ORDER BY id")
        assert cur.fetchone() == (1,)
        assert cur.fetchmany(3) == [(2,), (3,), (4,)]
        cur.scroll(5)
        assert cur.fetchone() == (10,)
        rest = cur.fetchall()
        assert rest[0] == (11,) and len(rest) == ROWS - 10
        assert cur.fetchmany(5) == []
        cur.close()
        # A second named cursor in the same transaction, then the
        # transaction's end closes it.
        with conn.cursor(name="other") as other:
            other.execute("SELECT 42 AS answer")
            assert other.fetchall() == [(42,)]
        conn.commit()
        with pytest.raises(psycopg.errors.InvalidCursorName):
            conn.execute('FETCH 1 FROM "other"')


def test_named_cursor_refuses_to_scroll_backward(table):
    with connect() as conn:
        cur = conn.cursor(name="forward_only")
        cur.execute(f"SELECT id FROM {table}")
        cur.fetchmany(2)
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            cur.scroll(-1)
        conn.rollback()


def test_stream_yields_every_row(table):
    with connect() as conn:
        cur = conn.cursor()
        ids = [row[0] for row in cur.stream(f"SELECT id FROM {table} ORDER BY id")]
        assert ids == list(range(1, ROWS + 1))
        # The connection is usable afterwards.
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_prepare_and_execute_through_execute(table):
    with connect(autocommit=True) as conn:
        conn.execute("DEALLOCATE ALL")
        conn.execute(f"PREPARE by_id(int) AS SELECT id, name FROM {table} WHERE id = $1")
        cur = conn.execute("EXECUTE by_id(%s)", ("7",))
        assert cur.fetchall() == [(7, "row 7")]
        assert cur.statusmessage == "SELECT 1"
        # Many executions: psycopg prepares the EXECUTE itself too.
        for i in range(1, 8):
            assert conn.execute("EXECUTE by_id(%s)", (i,)).fetchone() == (i, f"row {i}")
        with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
            conn.execute("PREPARE by_id AS SELECT 1")
        conn.execute("DEALLOCATE by_id")
        with pytest.raises(psycopg.errors.InvalidSqlStatementName):
            conn.execute("EXECUTE by_id(1)")
