"""psycopg2 against sqld. psycopg2 interpolates every parameter on the
client, as literals with `::` casts for bytes, dates and times, so what
the server receives is Postgres SQL of the driver's own making.
"""

import datetime
import decimal
import io
import os

import psycopg2
import psycopg2.errors
import psycopg2.extras
import pytest


@pytest.fixture
def conn():
    conn = psycopg2.connect(os.environ["SQLD_TEST_DSN"], connect_timeout=5)
    yield conn
    conn.close()


def test_connects_and_reports_a_version_it_can_parse(conn):
    # psycopg2 parses server_version into an integer at connect.
    assert conn.server_version >= 90000
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


def test_every_type_round_trips_through_client_side_literals(conn):
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS p2_values")
        cur.execute(
            "CREATE TABLE p2_values (id INTEGER PRIMARY KEY, r REAL, t TEXT, "
            "b BYTEA, d DATE, ts TIMESTAMP, tz TIMESTAMPTZ, n NUMERIC, ok BOOLEAN)"
        )
        row = (
            1,
            2.5,
            "héllo 'quoted'",
            psycopg2.Binary(b"\x00\xff\x10"),
            datetime.date(2024, 2, 29),
            datetime.datetime(2024, 1, 2, 3, 4, 5, 678901),
            datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
            decimal.Decimal("12.25"),
            True,
        )
        cur.execute("INSERT INTO p2_values VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", row)
        # What reached the server carried psycopg2's casts.
        assert b"::bytea" in cur.query and b"::date" in cur.query
        cur.execute("SELECT id, r, t, b, d, ts, tz, n, ok FROM p2_values")
        got = cur.fetchone()
        assert got[:3] == (1, 2.5, "héllo 'quoted'")
        assert bytes(got[3]) == b"\x00\xff\x10"
        assert got[4] == datetime.date(2024, 2, 29)
        assert got[5] == datetime.datetime(2024, 1, 2, 3, 4, 5, 678901)
        assert got[6] == datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        assert got[7] == decimal.Decimal("12.25")
        assert got[8] is True
    conn.commit()


def test_executemany_and_a_rolled_back_transaction(conn):
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS p2_many")
        cur.execute("CREATE TABLE p2_many (id INTEGER PRIMARY KEY, name TEXT)")
        conn.commit()
        cur.executemany("INSERT INTO p2_many VALUES (%s, %s)", [(i, f"n{i}") for i in range(50)])
        conn.rollback()
        cur.execute("SELECT count(*) FROM p2_many")
        assert cur.fetchone() == (0,)
        psycopg2.extras.execute_values(
            cur, "INSERT INTO p2_many VALUES %s", [(i, f"n{i}") for i in range(50)]
        )
        conn.commit()
        cur.execute("SELECT count(*), sum(id) FROM p2_many")
        assert cur.fetchone() == (50, sum(range(50)))
        # Postgres' name for the column.
        assert cur.description[0].name == "count"


def test_errors_carry_their_sqlstate_and_the_connection_goes_on(conn):
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS p2_unique")
        cur.execute("CREATE TABLE p2_unique (id INTEGER PRIMARY KEY)")
        cur.execute("INSERT INTO p2_unique VALUES (1)")
        conn.commit()
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cur.execute("INSERT INTO p2_unique VALUES (1)")
        with pytest.raises(psycopg2.errors.InFailedSqlTransaction):
            cur.execute("SELECT 1")
        conn.rollback()
        cur.execute("SELECT count(*) FROM p2_unique")
        assert cur.fetchone() == (1,)


def test_copy_from_and_copy_expert(conn):
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS p2_copy")
        cur.execute("CREATE TABLE p2_copy (id INTEGER, name TEXT)")
        cur.copy_from(io.StringIO("1\tone\n2\t\\N\n"), "p2_copy", columns=("id", "name"))
        cur.copy_expert("COPY p2_copy FROM STDIN WITH (FORMAT csv)", io.StringIO('3,"th,ree"\n'))
        conn.commit()
        out = io.StringIO()
        cur.copy_expert("COPY (SELECT * FROM p2_copy ORDER BY id) TO STDOUT WITH CSV", out)
        assert out.getvalue() == '1,one\n2,\n3,"th,ree"\n'


def test_dict_cursor_and_autocommit(conn):
    conn.autocommit = True
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute("SELECT 41 + 1 AS answer, upper('x') AS up")
        assert cur.fetchone() == {"answer": 42, "up": "X"}


def test_named_cursors_page_through_a_large_result(conn):
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS p2_big")
        cur.execute("CREATE TABLE p2_big (id INTEGER PRIMARY KEY, v TEXT)")
        psycopg2.extras.execute_values(
            cur, "INSERT INTO p2_big VALUES %s", [(i, f"v{i}") for i in range(5000)], page_size=1000
        )
    conn.commit()
    # A server-side cursor: DECLARE, then FETCH FORWARD itersize at a time.
    named = conn.cursor(name="p2_walk")
    named.itersize = 500
    named.execute("SELECT id, v FROM p2_big WHERE id >= %s ORDER BY id", (10,))
    ids = [row[0] for row in named]
    assert ids == list(range(10, 5000))
    named.close()
    conn.commit()
    with pytest.raises(psycopg2.errors.FeatureNotSupported):
        with conn.cursor(name="p2_hold", withhold=True) as held:
            held.execute("SELECT 1")
    conn.rollback()
