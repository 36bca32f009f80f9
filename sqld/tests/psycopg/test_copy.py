"""psycopg 3's cursor.copy against sqld: COPY FROM STDIN with write_row
(psycopg's own text-format encoding), COPY TO STDOUT read back with
read_row, and an exception inside the block (psycopg sends CopyFail)
rolling the whole COPY back. Run by pytest beside test_sqld.py, with the
server named in SQLD_TEST_DSN.
"""

import os

import psycopg
import pytest


def connect(**kwargs):
    return psycopg.connect(os.environ["SQLD_TEST_DSN"], connect_timeout=5, **kwargs)


ROWS = [
    (1, "plain", None),
    (2, "tab\there", "line\nbreak"),
    (3, "back\\slash", "ümläut ✓"),
]


def test_copy_rows_in_and_out():
    with connect(autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS copy_rows")
        conn.execute("CREATE TABLE copy_rows (id INTEGER, name TEXT, note TEXT)")
        cur = conn.cursor()
        with cur.copy("COPY copy_rows (id, name, note) FROM STDIN") as copy:
            for row in ROWS:
                copy.write_row(row)
        assert cur.rowcount == 3
        got = conn.execute("SELECT id, name, note FROM copy_rows ORDER BY id").fetchall()
        assert got == ROWS
        with cur.copy("COPY (SELECT id, name, note FROM copy_rows ORDER BY id) TO STDOUT") as copy:
            copy.set_types(["int4", "text", "text"])
            out = list(copy.rows())
        assert out == ROWS


def test_an_exception_inside_copy_rolls_it_back():
    with connect(autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS copy_fail")
        conn.execute("CREATE TABLE copy_fail (id INTEGER PRIMARY KEY)")
        cur = conn.cursor()
        # psycopg sends CopyFail and re-raises the exception itself.
        with pytest.raises(RuntimeError):
            with cur.copy("COPY copy_fail FROM STDIN") as copy:
                for i in range(1000):
                    copy.write_row((i,))
                raise RuntimeError("client gave up")
        assert conn.execute("SELECT count(*) FROM copy_fail").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.UniqueViolation):
            with cur.copy("COPY copy_fail FROM STDIN") as copy:
                copy.write_row((7,))
                copy.write_row((7,))
        assert conn.execute("SELECT count(*) FROM copy_fail").fetchone()[0] == 0
