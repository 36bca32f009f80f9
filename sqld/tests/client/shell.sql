CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, score REAL);
INSERT INTO notes (body, score) VALUES ('first; with a semicolon', 1.5);
INSERT INTO notes (body, score) VALUES ('it''s quoted', 2);
BEGIN;
INSERT INTO notes (body, score) VALUES ('rolled back', 0);
ROLLBACK;
SELECT id, body, score, typeof(score) FROM notes ORDER BY id;
.mode csv
.headers on
SELECT count(*) AS n, max(id) AS last FROM notes;
