"""Python's sqlite3 module, loading the sqld client library through
LD_LIBRARY_PATH, against a real sqld (SQLD_URL). Prints "ok" at the end."""
import sqlite3
import sys
import threading

assert sqlite3.sqlite_version == "3.40.1", sqlite3.sqlite_version

con = sqlite3.connect("app.db")  # SQLD_URL sends it to the server
cur = con.cursor()

# DDL
cur.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, v)")
assert cur.description is None

# parameterized inserts of every storage class; lastrowid and rowcount
values = [1, 2**62 + 12345, -(2**63), 2**63 - 1, 1.25, "text ü", b"\x00\xffblob", None]
for i, v in enumerate(values):
    cur.execute("INSERT INTO items (name, v) VALUES (?, ?)", (f"n{i}", v))
    assert cur.lastrowid == i + 1, (cur.lastrowid, i)
    assert cur.rowcount == 1
con.commit()
rows = cur.execute("SELECT v, typeof(v) FROM items ORDER BY id").fetchall()
assert [r[0] for r in rows] == values, rows
assert [r[1] for r in rows] == ["integer"] * 4 + ["real", "text", "blob", "null"], rows

# named parameters
row = cur.execute("SELECT :a + :b, :a", {"a": 40, "b": 2}).fetchone()
assert row == (42, 40), row

# per-value types in a mixed column
mixed = cur.execute(
    "SELECT 1 UNION ALL SELECT 'a' UNION ALL SELECT 1.5 UNION ALL SELECT x'00' UNION ALL SELECT NULL"
).fetchall()
assert mixed == [(1,), ("a",), (1.5,), (b"\x00",), (None,)], mixed
assert [type(r[0]) for r in mixed] == [int, str, float, bytes, type(None)]

# large blobs
big = bytes(range(256)) * 8192  # 2 MiB
cur.execute("INSERT INTO items (name, v) VALUES ('big', ?)", (big,))
con.commit()
assert cur.execute("SELECT v FROM items WHERE name = 'big'").fetchone()[0] == big

# executemany and rowcount
cur.executemany("INSERT INTO items (name, v) VALUES (?, ?)", [(f"m{i}", i) for i in range(50)])
assert cur.rowcount == 50, cur.rowcount
con.commit()
cur.execute("UPDATE items SET v = v + 1 WHERE name LIKE 'm%'")
assert cur.rowcount == 50
con.commit()

# cursor.description
cur.execute("SELECT id AS ident, name, v FROM items LIMIT 1")
assert [d[0] for d in cur.description] == ["ident", "name", "v"], cur.description
cur.fetchall()

# transactions and rollback
before = cur.execute("SELECT count(*) FROM items").fetchone()[0]
cur.execute("INSERT INTO items (name) VALUES ('rolled back')")
assert con.in_transaction
con.rollback()
assert not con.in_transaction
assert cur.execute("SELECT count(*) FROM items").fetchone()[0] == before

# constraint errors as IntegrityError, and the transaction survives them
cur.execute("INSERT INTO items (name) VALUES ('kept')")
try:
    cur.execute("INSERT INTO items (name) VALUES ('n0')")
    raise AssertionError("duplicate accepted")
except sqlite3.IntegrityError as e:
    assert "UNIQUE" in str(e), e
try:
    cur.execute("INSERT INTO items (name) VALUES (NULL)")
    raise AssertionError("NULL accepted")
except sqlite3.IntegrityError as e:
    assert "NOT NULL" in str(e), e
assert con.in_transaction
con.commit()
assert cur.execute("SELECT count(*) FROM items WHERE name = 'kept'").fetchone()[0] == 1

# other errors
try:
    cur.execute("SELECT * FROM missing_table")
    raise AssertionError("missing table accepted")
except sqlite3.OperationalError as e:
    assert "no such table" in str(e), e

# executescript (several statements, with tails)
con.executescript("""
    CREATE TABLE script (x INTEGER);
    INSERT INTO script VALUES (1);
    INSERT INTO script VALUES (2);
""")
assert cur.execute("SELECT sum(x) FROM script").fetchone()[0] == 3

# unsupported features fail loudly
try:
    con.create_function("f", 1, lambda x: x)
    raise AssertionError("create_function accepted")
except sqlite3.OperationalError:
    pass

# a connection shared by threads
shared = sqlite3.connect("app.db", check_same_thread=False, isolation_level=None)
shared.execute("CREATE TABLE t2 (x INTEGER)")
def work(base):
    for i in range(25):
        shared.execute("INSERT INTO t2 VALUES (?)", (base + i,))
threads = [threading.Thread(target=work, args=(k * 100,)) for k in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert shared.execute("SELECT count(*) FROM t2").fetchone()[0] == 100

con.close()
shared.close()
print("ok")
sys.exit(0)
