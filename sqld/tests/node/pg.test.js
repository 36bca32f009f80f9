// node-postgres (pg) against sqld, with its defaults: text results parsed
// by pg-types, Buffers sent in binary, Dates as local time with an offset.
const test = require('node:test');
const assert = require('node:assert');
const { Client, Pool } = require('pg');

const connection = { connectionString: process.env.SQLD_TEST_DSN, connectionTimeoutMillis: 5000 };

async function withClient(body) {
  const client = new Client(connection);
  await client.connect();
  try {
    return await body(client);
  } finally {
    await client.end();
  }
}

test('values round trip, dates included', () => withClient(async (c) => {
  await c.query('DROP TABLE IF EXISTS node_values');
  await c.query(`CREATE TABLE node_values (id INTEGER PRIMARY KEY, at TIMESTAMP, tz TIMESTAMPTZ,
    day DATE, doc JSON, data BYTEA, ok BOOLEAN, f DOUBLE PRECISION, name TEXT)`);
  const at = new Date(2024, 0, 2, 3, 4, 5, 123);
  const tz = new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6));
  await c.query('INSERT INTO node_values VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)',
    [1, at, tz, '2024-01-02', { a: [1, 2] }, Buffer.from([0, 1, 255]), true, 1.5, 'ünï']);
  const { rows: [row] } = await c.query('SELECT * FROM node_values WHERE id = $1', [1]);
  // A timestamp read back as what was written (pg-types turned an
  // unparsable one into null before).
  assert.strictEqual(row.at.getTime(), at.getTime());
  assert.strictEqual(row.tz.getTime(), tz.getTime());
  assert.strictEqual(row.day.getFullYear(), 2024);
  assert.deepStrictEqual(row.doc, { a: [1, 2] });
  assert.deepStrictEqual([...row.data], [0, 1, 255]);
  assert.strictEqual(row.ok, true);
  assert.strictEqual(row.f, 1.5);
  assert.strictEqual(row.name, 'ünï');
}));

test('computed columns are typed and named as Postgres does', () => withClient(async (c) => {
  const { rows: [row], fields } = await c.query('SELECT count(*), $1::int4 + 1 AS next, $2 * 2 FROM node_values', [41, 3]);
  assert.deepStrictEqual(fields.map((f) => f.name), ['count', 'next', '?column?']);
  // count(*) is int8 (a string in pg), int4 is a number.
  assert.strictEqual(row.count, '1');
  assert.strictEqual(row.next, 42);
  assert.strictEqual(row['?column?'], 6);
}));

test('a named prepared statement runs many times', () => withClient(async (c) => {
  await c.query('DROP TABLE IF EXISTS node_prepared');
  await c.query('CREATE TABLE node_prepared (id INTEGER PRIMARY KEY, n INTEGER)');
  for (let i = 0; i < 10; i++) {
    const r = await c.query({ name: 'insert-one', text: 'INSERT INTO node_prepared VALUES ($1, $2)', values: [i, i * i] });
    assert.strictEqual(r.rowCount, 1);
  }
  const { rows: [row] } = await c.query('SELECT sum(n) AS total FROM node_prepared');
  assert.strictEqual(Number(row.total), 285);
  await assert.rejects(c.query({ name: 'insert-one', values: [1, 1] }), (e) => e.code === '23505');
}));

test('a pool with transactions and errors', async () => {
  const pool = new Pool({ ...connection, max: 2 });
  try {
    await pool.query('DROP TABLE IF EXISTS node_pool');
    await pool.query('CREATE TABLE node_pool (id INTEGER PRIMARY KEY)');
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('INSERT INTO node_pool VALUES (1)');
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    await Promise.all([...Array(10).keys()].map((i) => pool.query('INSERT INTO node_pool VALUES ($1)', [i])));
    const { rows: [row] } = await pool.query('SELECT count(*)::int4 AS n FROM node_pool');
    assert.strictEqual(row.n, 10);
    await assert.rejects(pool.query('SELECT * FROM no_such_table'), (e) => e.code === '42P01');
  } finally {
    await pool.end();
  }
});
