//! Cursors (DECLARE, FETCH, MOVE, CLOSE) and SQL-level prepared statements
//! (PREPARE, EXECUTE, DEALLOCATE) through tokio-postgres, over the simple
//! and the extended protocol.

mod common;

use std::time::Duration;

use common::{integers, Sqld};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, SimpleQueryMessage};

/// A table `t(id integer, name text)` holding rows 1..=n.
async fn table_of(c: &Client, n: u64) {
    c.batch_execute(&format!(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT);
         INSERT INTO t WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < {n})
         SELECT v, 'row ' || v FROM s;"
    ))
    .await
    .unwrap();
}

/// The SQLSTATE `sql` (a simple query) fails with.
async fn sqlstate(c: &Client, sql: &str) -> String {
    let err = c.batch_execute(sql).await.expect_err(sql);
    err.code().expect("a server error").code().to_owned()
}

/// The row counts of a simple query's command tags, and its rows (columns
/// joined by `|`).
async fn simple(c: &Client, sql: &str) -> (Vec<u64>, Vec<String>) {
    let mut counts = Vec::new();
    let mut values = Vec::new();
    for message in c.simple_query(sql).await.unwrap() {
        match message {
            SimpleQueryMessage::CommandComplete(n) => counts.push(n),
            SimpleQueryMessage::Row(row) => values.push(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => {}
        }
    }
    (counts, values)
}

#[tokio::test]
async fn declare_fetch_move_and_close_walk_a_query_forward() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    table_of(&c, 10).await;
    c.batch_execute("BEGIN; DECLARE c CURSOR FOR SELECT id, name FROM t ORDER BY id")
        .await
        .unwrap();
    // Extended protocol: the rows come typed.
    let rows = c.query("FETCH 3 FROM c", &[]).await.unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(rows[0].get::<_, String>(1), "row 1");
    // Simple protocol: MOVE counts what it passed over, FETCH what it sent.
    assert_eq!(simple(&c, "MOVE FORWARD 2 IN c").await.0, [2]);
    assert_eq!(integers(&c, "FETCH NEXT FROM c").await, [6]);
    assert_eq!(integers(&c, "FETCH ABSOLUTE 8 FROM c").await, [8]);
    assert_eq!(integers(&c, "FETCH RELATIVE 2 FROM c").await, [10]);
    // Exhausted: FETCH returns nothing, MOVE moves nothing.
    assert_eq!(simple(&c, "FETCH ALL FROM c").await, (vec![0], vec![]));
    assert_eq!(simple(&c, "MOVE c").await.0, [0]);
    assert_eq!(simple(&c, "CLOSE c").await.0, [0]);
    assert_eq!(sqlstate(&c, "FETCH c").await, "34000");
    c.batch_execute("ROLLBACK").await.unwrap();

    // Several in one simple query (one implicit transaction block).
    let (counts, values) = simple(
        &c,
        "DECLARE a CURSOR FOR SELECT id FROM t WHERE id > 7; FETCH FORWARD ALL FROM a",
    )
    .await;
    assert_eq!(counts, [0, 3]);
    assert_eq!(values, ["8", "9", "10"]);
    assert_eq!(
        sqlstate(&c, "CLOSE a").await,
        "34000",
        "ended with its query"
    );
}

#[tokio::test]
async fn fetch_tags_and_cursor_names_are_as_in_postgres() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    table_of(&c, 5).await;
    c.batch_execute("BEGIN; DECLARE \"Mixed Case\" NO SCROLL CURSOR WITHOUT HOLD FOR SELECT id FROM t; DECLARE lower CURSOR FOR SELECT 1")
        .await
        .unwrap();
    // Read the tags off the wire through a prepared statement's execute count.
    assert_eq!(
        c.execute("FETCH 2 FROM \"Mixed Case\"", &[]).await.unwrap(),
        2
    );
    assert_eq!(
        c.execute("MOVE ALL FROM \"Mixed Case\"", &[])
            .await
            .unwrap(),
        3
    );
    // Unquoted names fold to lower case; quoted ones do not.
    assert_eq!(integers(&c, "FETCH FROM LOWER").await, [1]);
    assert_eq!(sqlstate(&c, "FETCH FROM \"mixed case\"").await, "34000");
    c.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn a_cursor_lives_only_inside_its_transaction_block() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    table_of(&c, 3).await;
    assert_eq!(
        sqlstate(&c, "DECLARE c CURSOR FOR SELECT id FROM t").await,
        "25P01"
    );
    // The session goes on.
    assert_eq!(integers(&c, "SELECT count(*) FROM t").await, [3]);

    for end in ["COMMIT", "ROLLBACK", "END", "ABORT"] {
        c.batch_execute("BEGIN; DECLARE c CURSOR FOR SELECT id FROM t")
            .await
            .unwrap();
        assert_eq!(integers(&c, "FETCH c").await, [1]);
        c.batch_execute(end).await.unwrap();
        c.batch_execute("BEGIN").await.unwrap();
        assert_eq!(sqlstate(&c, "FETCH c").await, "34000", "after {end}");
        c.batch_execute("ROLLBACK").await.unwrap();
    }

    // A failed transaction's cursors go with its ROLLBACK, and a name can
    // be declared again in the next one.
    c.batch_execute("BEGIN; DECLARE c CURSOR FOR SELECT id FROM t")
        .await
        .unwrap();
    assert_eq!(sqlstate(&c, "SELECT nosuch").await, "42703");
    assert_eq!(sqlstate(&c, "FETCH c").await, "25P02");
    c.batch_execute("ROLLBACK; BEGIN; DECLARE c CURSOR FOR SELECT id FROM t")
        .await
        .unwrap();
    assert_eq!(integers(&c, "FETCH ALL c").await, [1, 2, 3]);
    // CLOSE ALL closes them all; outside a transaction it is a no-op.
    c.batch_execute("DECLARE d CURSOR FOR SELECT 1; CLOSE ALL")
        .await
        .unwrap();
    assert_eq!(sqlstate(&c, "FETCH d").await, "34000");
    c.batch_execute("ROLLBACK; CLOSE ALL").await.unwrap();
}

/// A cursor's statement lives on the session's connection: once cursors
/// have come and gone, the connection still has its sandbox and still
/// stops statements at their timeout.
#[tokio::test]
async fn closed_cursors_leave_the_sandbox_and_statement_timeout_in_place() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    c.batch_execute(
        "BEGIN; DECLARE a CURSOR FOR SELECT 1; DECLARE b CURSOR FOR SELECT 2;
         FETCH a; CLOSE a; COMMIT;
         SET statement_timeout = '200ms'",
    )
    .await
    .unwrap();
    assert_eq!(sqlstate(&c, "PRAGMA synchronous = OFF").await, "42501");
    let endless =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    let stopped = tokio::time::timeout(Duration::from_secs(10), sqlstate(&c, endless)).await;
    assert_eq!(stopped.expect("stopped by the statement timeout"), "57014");
}

#[tokio::test]
async fn cursor_errors_carry_their_sqlstates() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    table_of(&c, 3).await;
    let cases = [
        ("DECLARE c CURSOR FOR SELECT 2", "42P03"),
        ("DECLARE h CURSOR WITH HOLD FOR SELECT 1", "0A000"),
        ("DECLARE b BINARY CURSOR FOR SELECT 1", "0A000"),
        (
            "DECLARE w CURSOR FOR INSERT INTO t(name) VALUES ('x')",
            "0A000",
        ),
        ("DECLARE w CURSOR FOR BEGIN", "0A000"),
        ("DECLARE s CURSOR FOR SELECT FROM", "42601"),
        ("DECLARE m CURSOR FOR SELECT * FROM missing", "42P01"),
        ("DECLARE c CURSOR SELECT 1", "42601"),
        ("FETCH PRIOR FROM c", "0A000"),
        ("FETCH BACKWARD 2 FROM c", "0A000"),
        ("FETCH -1 FROM c", "0A000"),
        ("FETCH LAST FROM c", "0A000"),
        ("FETCH 0 FROM c", "0A000"),
        ("FETCH SIDEWAYS FROM c", "42601"),
        ("FETCH 2 FROM nosuch", "34000"),
        ("MOVE nosuch", "34000"),
        ("CLOSE nosuch", "34000"),
    ];
    for (sql, code) in cases {
        c.batch_execute("BEGIN; DECLARE c CURSOR FOR SELECT id FROM t")
            .await
            .unwrap();
        c.batch_execute("FETCH c").await.unwrap();
        assert_eq!(sqlstate(&c, sql).await, code, "{sql}");
        c.batch_execute("ROLLBACK").await.unwrap();
    }
    // FETCH ABSOLUTE to the row already fetched goes back: refused.
    c.batch_execute("BEGIN; DECLARE c CURSOR FOR SELECT id FROM t; FETCH 2 FROM c")
        .await
        .unwrap();
    assert_eq!(sqlstate(&c, "FETCH ABSOLUTE 2 FROM c").await, "0A000");
    c.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn fetch_is_typed_like_the_query_and_takes_parameters() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    c.batch_execute(
        "CREATE TABLE m(i INTEGER, r REAL, s TEXT, b BOOLEAN);
         INSERT INTO m VALUES (1, 1.5, 'a', true), (2, 2.5, 'b', false)",
    )
    .await
    .unwrap();
    let query = "SELECT i, r, s, b, i * 10 AS expr FROM m WHERE i >= $1 ORDER BY i";
    let plain = c.prepare(&query.replace("$1", "1")).await.unwrap();
    let plain: Vec<Type> = plain.columns().iter().map(|c| c.type_().clone()).collect();
    assert_eq!(plain[0], Type::INT8);

    c.batch_execute("BEGIN").await.unwrap();
    // DECLARE over the extended protocol, with a parameter.
    c.execute(&format!("DECLARE c CURSOR FOR {query}"), &[&1i64])
        .await
        .unwrap();
    let fetch = c.prepare("FETCH 1 FROM c").await.unwrap();
    let described: Vec<Type> = fetch.columns().iter().map(|c| c.type_().clone()).collect();
    assert_eq!(described, plain, "FETCH is described as the query is");
    for expected in [1i64, 2] {
        let rows = c.query(&fetch, &[]).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, i64>("i"), expected);
        assert_eq!(rows[0].get::<_, i64>("expr"), expected * 10);
        assert_eq!(rows[0].get::<_, bool>("b"), expected == 1);
    }
    assert!(c.query(&fetch, &[]).await.unwrap().is_empty());
    c.batch_execute("COMMIT").await.unwrap();
}

/// A cursor steps its query as it is fetched: paging through 50,000 rows
/// holds one page at a time, far below a result limit the whole query
/// exceeds.
#[tokio::test]
async fn a_cursor_pages_through_a_large_table_within_the_result_limit() {
    const ROWS: i64 = 50_000;
    let sqld = Sqld::start_with(&["--dev", "--max-result-size", "200000"]);
    let c = sqld.connect().await;
    table_of(&c, ROWS as u64).await;
    let err = c.query("SELECT id, name FROM t", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "54000", "the limit applies");

    c.batch_execute("BEGIN; DECLARE big CURSOR FOR SELECT id, name FROM t ORDER BY id")
        .await
        .unwrap();
    let (mut count, mut sum, mut pages) = (0i64, 0i64, 0);
    loop {
        let rows = c.query("FETCH FORWARD 100 FROM big", &[]).await.unwrap();
        if rows.is_empty() {
            break;
        }
        pages += 1;
        count += rows.len() as i64;
        sum += rows.iter().map(|r| r.get::<_, i64>(0)).sum::<i64>();
    }
    assert_eq!((count, pages), (ROWS, 500));
    assert_eq!(sum, ROWS * (ROWS + 1) / 2);
    // FETCH ALL is one result, and the limit still holds for it.
    c.batch_execute("CLOSE big; DECLARE big CURSOR FOR SELECT id, name FROM t")
        .await
        .unwrap();
    assert_eq!(sqlstate(&c, "FETCH ALL FROM big").await, "54000");
    c.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn prepare_execute_and_deallocate() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    table_of(&c, 3).await;
    c.batch_execute("PREPARE typed(int, text) AS SELECT $1 + 1, typeof($1), $2, typeof($2)")
        .await
        .unwrap();
    // Arguments are converted to the declared types: '41' is an int, 7 text.
    assert_eq!(
        simple(&c, "EXECUTE typed('41', 7)").await,
        (vec![1], vec!["42|integer|7|text".to_owned()])
    );
    assert_eq!(
        simple(&c, "EXECUTE typed(1, 'x')").await.1,
        ["2|integer|x|text"]
    );

    // Untyped parameters take the arguments as they are.
    c.batch_execute("PREPARE untyped AS SELECT name FROM t WHERE id = $1")
        .await
        .unwrap();
    assert_eq!(simple(&c, "EXECUTE untyped(2)").await.1, ["row 2"]);
    assert_eq!(simple(&c, "EXECUTE untyped(1 + 2)").await.1, ["row 3"]);

    // A data change returns its own command tag; prepared statements
    // outlive transactions.
    c.batch_execute("BEGIN; PREPARE ins AS INSERT INTO t(id, name) VALUES ($1, $2); ROLLBACK")
        .await
        .unwrap();
    assert_eq!(simple(&c, "EXECUTE ins(10, 'ten')").await.0, [1]);
    assert_eq!(
        integers(&c, "SELECT id FROM t WHERE name = 'ten'").await,
        [10]
    );

    let cases = [
        ("EXECUTE nosuch", "26000"),
        ("EXECUTE nosuch(1)", "26000"),
        ("PREPARE typed AS SELECT 1", "42P05"),
        ("EXECUTE typed(1)", "42601"),
        ("EXECUTE typed(1, 2, 3)", "42601"),
        ("EXECUTE typed('five', 'x')", "22P02"),
        ("EXECUTE untyped(nosuch)", "42703"),
        ("PREPARE bad AS SELECT * FROM missing", "42P01"),
        ("PREPARE bad AS BEGIN", "42601"),
        ("PREPARE bad(int) SELECT 1", "42601"),
    ];
    for (sql, code) in cases {
        assert_eq!(sqlstate(&c, sql).await, code, "{sql}");
    }
    // Refused ones were not kept.
    assert_eq!(sqlstate(&c, "EXECUTE bad").await, "26000");

    c.batch_execute("DEALLOCATE typed").await.unwrap();
    assert_eq!(sqlstate(&c, "EXECUTE typed(1, 'x')").await, "26000");
    // An unknown name may be a protocol-level statement: no error.
    c.batch_execute("DEALLOCATE PREPARE nosuch").await.unwrap();
    c.batch_execute("DEALLOCATE ALL").await.unwrap();
    assert_eq!(sqlstate(&c, "EXECUTE untyped(1)").await, "26000");
    c.batch_execute("PREPARE again AS SELECT 1; DISCARD ALL")
        .await
        .unwrap();
    assert_eq!(sqlstate(&c, "EXECUTE again").await, "26000");

    // In a failed transaction EXECUTE is refused like any statement.
    c.batch_execute("PREPARE one AS SELECT 1; BEGIN")
        .await
        .unwrap();
    assert_eq!(sqlstate(&c, "SELECT nosuch").await, "42703");
    assert_eq!(sqlstate(&c, "EXECUTE one").await, "25P02");
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(simple(&c, "EXECUTE one").await.1, ["1"]);
}

#[tokio::test]
async fn execute_over_the_extended_protocol_is_typed_and_takes_parameters() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    table_of(&c, 3).await;
    c.batch_execute("PREPARE q(int) AS SELECT id, name FROM t WHERE id >= $1 ORDER BY id")
        .await
        .unwrap();
    let execute = c.prepare("EXECUTE q($1)").await.unwrap();
    assert_eq!(execute.columns()[0].type_(), &Type::INT8);
    assert_eq!(execute.columns()[1].type_(), &Type::TEXT);
    let rows = c.query(&execute, &[&"2"]).await.unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, [2, 3]);
    assert_eq!(rows[1].get::<_, String>(1), "row 3");
}
