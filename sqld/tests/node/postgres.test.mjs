// postgres.js against sqld with its defaults: it reads pg_type's arrays
// at connect, prepares every statement and sends parameters typed.
import test from 'node:test';
import assert from 'node:assert';
import postgres from 'postgres';

test('postgres.js: connect, insert helper, transactions, types', async () => {
  const sql = postgres(process.env.SQLD_TEST_DSN, { max: 2, connect_timeout: 5, onnotice: () => {} });
  try {
    await sql`DROP TABLE IF EXISTS pjs_items`;
    await sql`CREATE TABLE pjs_items (id SERIAL PRIMARY KEY, name TEXT NOT NULL, at TIMESTAMPTZ, n INT4, data BYTEA, doc JSONB)`;
    const at = new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6));
    const [row] = await sql`INSERT INTO pjs_items ${sql({ name: 'ann', at, n: 7, data: Buffer.from([1, 2, 255]), doc: { a: [1, 2] } })} RETURNING *`;
    assert.strictEqual(row.name, 'ann');
    assert.strictEqual(row.at.getTime(), at.getTime());
    assert.strictEqual(row.n, 7);
    assert.deepStrictEqual([...row.data], [1, 2, 255]);
    assert.deepStrictEqual(row.doc, { a: [1, 2] });

    await sql.begin(async (tx) => { await tx`INSERT INTO pjs_items (name) VALUES (${'bob'})`; });
    await assert.rejects(sql.begin(async (tx) => {
      await tx`INSERT INTO pjs_items (name) VALUES (${'carl'})`;
      throw new Error('undo');
    }), /undo/);
    const names = await sql`SELECT name FROM pjs_items ORDER BY id`;
    assert.deepStrictEqual(names.map((r) => r.name), ['ann', 'bob']);
    const [{ next }] = await sql`SELECT ${41} + 1 AS next`;
    assert.strictEqual(Number(next), 42);
    await assert.rejects(sql`INSERT INTO pjs_items (id, name) VALUES (1, 'dup')`, (e) => e.code === '23505');
  } finally {
    await sql.end({ timeout: 5 });
  }
});
