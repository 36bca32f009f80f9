-- The benchmark's data set: pgbench's TPC-B tables at scale 1 (1 branch,
-- 10 tellers, 100,000 accounts), in DDL that SQLite and PostgreSQL both run
-- unchanged. Loaded by psql into each server before the first run.
DROP TABLE IF EXISTS history;
DROP TABLE IF EXISTS accounts;
DROP TABLE IF EXISTS tellers;
DROP TABLE IF EXISTS branches;
CREATE TABLE branches(bid INTEGER PRIMARY KEY, bbalance INTEGER, filler TEXT);
CREATE TABLE tellers(tid INTEGER PRIMARY KEY, bid INTEGER, tbalance INTEGER, filler TEXT);
CREATE TABLE accounts(aid INTEGER PRIMARY KEY, bid INTEGER, abalance INTEGER, filler TEXT);
CREATE TABLE history(tid INTEGER, bid INTEGER, aid INTEGER, delta INTEGER, mtime TIMESTAMP, filler TEXT);
INSERT INTO branches VALUES (1, 0, NULL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10)
INSERT INTO tellers SELECT i, 1, 0, NULL FROM n;
-- 84 characters of filler, as pgbench's accounts rows carry.
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
INSERT INTO accounts
SELECT i, 1, 0, '                                                                                    ' FROM n;
