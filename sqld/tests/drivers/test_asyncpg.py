"""asyncpg against sqld. asyncpg prepares every statement, asks the server
for the parameter types and refuses a Python value of another type, and
decodes results in binary: so parameter and result typing must be right,
not just close. A pool resets each connection it takes back with
`SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`.
"""

import asyncio
import datetime
import decimal
import os

import asyncpg
import pytest


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def connect():
    return await asyncpg.connect(os.environ["SQLD_TEST_DSN"], timeout=5)


def test_a_pool_acquires_and_releases_connections_many_times():
    async def main():
        pool = await asyncpg.create_pool(os.environ["SQLD_TEST_DSN"], min_size=1, max_size=2)
        try:
            for i in range(20):
                async with pool.acquire() as conn:
                    assert await conn.fetchval("SELECT $1 + 1", i) == i + 1
            # Concurrent users of the two connections.
            results = await asyncio.gather(*(pool.fetchval("SELECT $1 * 2", i) for i in range(10)))
            assert results == [i * 2 for i in range(10)]
        finally:
            await pool.close()

    run(main())


def test_typed_columns_round_trip_in_binary():
    async def main():
        conn = await connect()
        try:
            await conn.execute("DROP TABLE IF EXISTS apg_values")
            await conn.execute(
                "CREATE TABLE apg_values (id INTEGER PRIMARY KEY, name TEXT, at TIMESTAMP, "
                "tz TIMESTAMPTZ, day DATE, f DOUBLE PRECISION, data BYTEA, ok BOOLEAN, n NUMERIC)"
            )
            row = (
                1,
                "ann",
                datetime.datetime(2024, 1, 2, 3, 4, 5, 123000),
                datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
                datetime.date(2024, 1, 2),
                1.5,
                b"\x00\x01\xff",
                True,
                decimal.Decimal("1.25"),
            )
            insert = "INSERT INTO apg_values VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            await conn.execute(insert, *row)
            got = await conn.fetchrow("SELECT * FROM apg_values WHERE id = $1", 1)
            assert tuple(got) == row
        finally:
            await conn.close()

    run(main())


def test_parameters_inside_expressions_are_typed_by_what_they_meet():
    async def main():
        conn = await connect()
        try:
            assert await conn.fetchval("SELECT $1 + 1", 41) == 42
            assert await conn.fetchval("SELECT coalesce($1, 1)", 3) == 3
            assert await conn.fetchval("SELECT abs($1)", -3) == 3.0
            assert await conn.fetchval("SELECT $1 || 'b'", "a") == "ab"
            assert await conn.fetchval("SELECT $1::int4 * 2", 21) == 42
            await conn.execute("DROP TABLE IF EXISTS apg_people")
            await conn.execute("CREATE TABLE apg_people (id INTEGER PRIMARY KEY, name TEXT)")
            await conn.execute("INSERT INTO apg_people (id, name) SELECT $1, $2", 7, "bo")
            row = await conn.fetchrow("SELECT id * 2 AS twice, count(*) FROM apg_people")
            assert row["twice"] == 14 and row["count"] == 1
        finally:
            await conn.close()

    run(main())


def test_a_prepared_statement_runs_many_times_and_errors_map_to_exceptions():
    async def main():
        conn = await connect()
        try:
            await conn.execute("DROP TABLE IF EXISTS apg_counts")
            await conn.execute("CREATE TABLE apg_counts (id INTEGER PRIMARY KEY, n INTEGER)")
            stmt = await conn.prepare("INSERT INTO apg_counts VALUES ($1, $2)")
            for i in range(10):
                await stmt.fetch(i, i * i)
            assert await conn.fetchval("SELECT sum(n) FROM apg_counts") == sum(i * i for i in range(10))
            with pytest.raises(asyncpg.UniqueViolationError):
                await stmt.fetch(1, 1)
            async with conn.transaction():
                await conn.execute("DELETE FROM apg_counts")
            assert await conn.fetchval("SELECT count(*) FROM apg_counts") == 0
            with pytest.raises(ZeroDivisionError):
                async with conn.transaction():
                    await conn.execute("INSERT INTO apg_counts VALUES (100, 1)")
                    1 / 0
            assert await conn.fetchval("SELECT count(*) FROM apg_counts") == 0
        finally:
            await conn.close()

    run(main())


def test_copy_to_and_from_a_table_in_csv():
    async def main():
        conn = await connect()
        try:
            await conn.execute("DROP TABLE IF EXISTS apg_copy")
            await conn.execute("CREATE TABLE apg_copy (id INTEGER, name TEXT)")
            import io

            source = io.BytesIO(b"1,one\n2,two\n")
            await conn.copy_to_table("apg_copy", source=source, format="csv")
            assert await conn.fetchval("SELECT count(*) FROM apg_copy") == 2
            out = io.BytesIO()
            await conn.copy_from_query("SELECT * FROM apg_copy ORDER BY id", output=out, format="csv")
            assert out.getvalue() == b"1,one\n2,two\n"
        finally:
            await conn.close()

    run(main())


def test_copy_records_to_table_in_binary():
    async def main():
        conn = await connect()
        try:
            await conn.execute("DROP TABLE IF EXISTS apg_bulk")
            await conn.execute(
                "CREATE TABLE apg_bulk (id INTEGER PRIMARY KEY, name TEXT, at TIMESTAMP, "
                "f DOUBLE PRECISION, data BYTEA, ok BOOLEAN, n NUMERIC, day DATE)"
            )
            records = [
                (
                    i,
                    f"n{i}",
                    datetime.datetime(2024, 1, 2, 3, 4, 5, i),
                    i / 2,
                    bytes([i % 256]),
                    i % 2 == 0,
                    decimal.Decimal(i) / 4,
                    datetime.date(2024, 1, 1) + datetime.timedelta(days=i),
                )
                for i in range(1, 1001)
            ]
            records.append((5000, None, None, None, None, None, None, None))
            # asyncpg reads the column types from pg_attribute, then sends
            # the rows in COPY's binary format.
            assert await conn.copy_records_to_table("apg_bulk", records=records) == "COPY 1001"
            got = await conn.fetch("SELECT * FROM apg_bulk ORDER BY id")
            assert [tuple(r) for r in got] == records
        finally:
            await conn.close()

    run(main())
