//! The Postgres protocol as tokio-postgres speaks it: simple and extended
//! queries, text and binary formats, every mapped type, transactions,
//! errors, portals, cancel and timeouts.

mod common;

use common::Sqld;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::SimpleQueryMessage;

fn simple_rows(msgs: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    msgs.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn several_statements_in_one_simple_query() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    let msgs = c
        .simple_query("create table t(a integer); insert into t values (1),(2); select a from t order by a; select count(*) from t")
        .await
        .unwrap();
    assert_eq!(
        simple_rows(&msgs),
        vec![
            vec![Some("1".into())],
            vec![Some("2".into())],
            vec![Some("2".into())]
        ]
    );
    let tags: Vec<u64> = msgs
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(tags, vec![0, 2, 2, 1]);
    // An empty query is answered, not failed.
    assert!(simple_rows(&c.simple_query("").await.unwrap()).is_empty());
    assert!(simple_rows(&c.simple_query(" ; -- nothing").await.unwrap()).is_empty());
}

#[tokio::test]
async fn a_multi_statement_query_is_one_implicit_transaction() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    c.batch_execute("create table t(a integer primary key)")
        .await
        .unwrap();
    let err = c
        .batch_execute(
            "insert into t values (1); insert into t values (2); insert into t values (1)",
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    let n: i64 = c
        .query_one("select count(*) from t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        n, 0,
        "the statements before the failing one were rolled back"
    );
    c.batch_execute("insert into t values (1); insert into t values (2)")
        .await
        .unwrap();
    let n: i64 = c
        .query_one("select count(*) from t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    // Explicit transaction control inside the string is honoured as written.
    let _ = c
        .batch_execute("begin; insert into t values (3); commit; insert into t values (1)")
        .await
        .unwrap_err();
    let n: i64 = c
        .query_one("select count(*) from t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
}

#[tokio::test]
async fn every_mapped_type_round_trips_in_binary() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    c.batch_execute(
        "create table v(i integer, r real, t text, b blob, ok boolean, n numeric, d date, ts timestamp, j json, vc varchar(10))",
    )
    .await
    .unwrap();
    let stmt = c
        .prepare("insert into v values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .await
        .unwrap();
    assert_eq!(stmt.params()[0], Type::INT8);
    assert_eq!(stmt.params()[1], Type::FLOAT8);
    assert_eq!(stmt.params()[2], Type::TEXT);
    assert_eq!(stmt.params()[3], Type::BYTEA);
    assert_eq!(stmt.params()[4], Type::BOOL);
    assert_eq!(stmt.params()[5], Type::NUMERIC);
    assert_eq!(stmt.params()[6], Type::DATE);
    assert_eq!(stmt.params()[7], Type::TIMESTAMP);
    assert_eq!(stmt.params()[8], Type::JSON);
    assert_eq!(stmt.params()[9], Type::VARCHAR);
    let blob: Vec<u8> = (0..=255).collect();
    // Numeric, dates and JSON go in as text in SQL; the typed ones as params.
    c.execute(
        "insert into v(i, r, t, b, ok, n, d, ts, j, vc) values ($1, $2, $3, $4, $5, 12.50, '2024-02-29', '2024-02-29 13:14:15', '{\"a\":1}', $6)",
        &[&i64::MIN, &1.5f64, &"héllo ✓", &blob, &true, &"short"],
    )
    .await
    .unwrap();
    let row = c
        .query_one("select i, r, t, b, ok, d, ts, vc from v", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), i64::MIN);
    assert_eq!(row.get::<_, f64>(1), 1.5);
    assert_eq!(row.get::<_, &str>(2), "héllo ✓");
    assert_eq!(row.get::<_, Vec<u8>>(3), blob);
    assert!(row.get::<_, bool>(4));
    assert_eq!(row.columns()[5].type_(), &Type::DATE);
    assert_eq!(row.columns()[6].type_(), &Type::TIMESTAMP);
    assert_eq!(row.get::<_, &str>(7), "short");
    // The same values in text format.
    let msgs = c
        .simple_query("select i, r, b, ok, n, d, ts, j from v")
        .await
        .unwrap();
    let rows = simple_rows(&msgs);
    assert_eq!(rows[0][0].as_deref(), Some("-9223372036854775808"));
    assert_eq!(rows[0][1].as_deref(), Some("1.5"));
    assert!(rows[0][2].as_deref().unwrap().starts_with("\\x0001"));
    assert_eq!(rows[0][3].as_deref(), Some("t"));
    assert_eq!(rows[0][4].as_deref(), Some("12.5"));
    assert_eq!(rows[0][5].as_deref(), Some("2024-02-29"));
    assert_eq!(rows[0][6].as_deref(), Some("2024-02-29 13:14:15"));
    assert_eq!(rows[0][7].as_deref(), Some(r#"{"a":1}"#));
}

#[tokio::test]
async fn nulls_and_expression_columns() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    c.batch_execute("create table n(a integer, b text)")
        .await
        .unwrap();
    c.execute(
        "insert into n values ($1, $2)",
        &[&None::<i64>, &None::<&str>],
    )
    .await
    .unwrap();
    let row = c.query_one("select a, b from n", &[]).await.unwrap();
    assert_eq!(row.get::<_, Option<i64>>(0), None);
    assert_eq!(row.get::<_, Option<&str>>(1), None);
    // count(*) has no declared type: its values decide (int8).
    let row = c.query_one("select count(*) from n", &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    let row = c
        .query_one("select count(*) from n where a = $1", &[&5i64])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 0);
}

#[tokio::test]
async fn large_values_and_many_rows() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    c.batch_execute("create table big(id integer primary key, body text, data blob)")
        .await
        .unwrap();
    let text = "x".repeat(5 * 1024 * 1024);
    let blob = vec![7u8; 3 * 1024 * 1024];
    c.execute("insert into big values (1, $1, $2)", &[&text, &blob])
        .await
        .unwrap();
    let row = c
        .query_one("select body, data from big where id = $1", &[&1i64])
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0).len(), text.len());
    assert_eq!(row.get::<_, Vec<u8>>(1), blob);

    c.batch_execute(
        "create table many(n integer); with recursive c(x) as (select 1 union all select x+1 from c where x < 10000) insert into many select x from c",
    )
    .await
    .unwrap();
    let rows = c.query("select n from many order by n", &[]).await.unwrap();
    assert_eq!(rows.len(), 10_000);
    assert_eq!(rows[9_999].get::<_, i64>(0), 10_000);
    let msgs = c.simple_query("select n from many").await.unwrap();
    assert_eq!(simple_rows(&msgs).len(), 10_000);
}

#[tokio::test]
async fn portal_suspension_fetches_in_batches() {
    let sqld = Sqld::start();
    let mut c = sqld.connect().await;
    c.batch_execute(
        "create table p(n integer); with recursive c(x) as (select 1 union all select x+1 from c where x < 250) insert into p select x from c",
    )
    .await
    .unwrap();
    let tx = c.transaction().await.unwrap();
    let stmt = tx.prepare("select n from p order by n").await.unwrap();
    let portal = tx.bind(&stmt, &[]).await.unwrap();
    let mut seen = Vec::new();
    loop {
        let batch = tx.query_portal(&portal, 100).await.unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 100);
        seen.extend(batch.iter().map(|r| r.get::<_, i64>(0)));
    }
    assert_eq!(seen, (1..=250).collect::<Vec<i64>>());
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn parameters_bind_by_number_in_any_order() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    let row = c
        .query_one("select $2 || '-' || $1", &[&"a", &"b"])
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "b-a");
    c.batch_execute("create table kv(k integer primary key, v text)")
        .await
        .unwrap();
    for k in 0..20i64 {
        c.execute("insert into kv values ($1, $2)", &[&k, &format!("v{k}")])
            .await
            .unwrap();
    }
    let rows = c
        .query(
            "select v from kv where k between $1 and $2 order by k limit $3",
            &[&5i64, &10i64, &3i64],
        )
        .await
        .unwrap();
    let vs: Vec<&str> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(vs, vec!["v5", "v6", "v7"]);
}

#[tokio::test]
async fn transactions_savepoints_and_ready_for_query_status() {
    let sqld = Sqld::start();
    let mut c = sqld.connect().await;
    c.batch_execute("create table acct(id integer primary key, bal integer)")
        .await
        .unwrap();
    c.batch_execute("insert into acct values (1, 100)")
        .await
        .unwrap();

    let tx = c.transaction().await.unwrap();
    tx.execute("update acct set bal = bal - 10 where id = 1", &[])
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let bal: i64 = c
        .query_one("select bal from acct", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(bal, 100);

    c.batch_execute("begin; update acct set bal = 1 where id = 1; savepoint s; update acct set bal = 2 where id = 1; rollback to savepoint s; release s; commit")
        .await
        .unwrap();
    let bal: i64 = c
        .query_one("select bal from acct", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(bal, 1);

    // After an error inside a transaction, everything fails with 25P02
    // until ROLLBACK.
    c.batch_execute("begin").await.unwrap();
    let err = c
        .batch_execute("select nosuch from acct")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_COLUMN));
    let err = c.batch_execute("select 1").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    let err = c.query("select 1", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    c.batch_execute("rollback").await.unwrap();
    c.batch_execute("select 1").await.unwrap();

    // COMMIT of a failed transaction rolls back.
    c.batch_execute("begin; update acct set bal = 5 where id = 1")
        .await
        .unwrap();
    let _ = c
        .batch_execute("insert into acct values (1, 0)")
        .await
        .unwrap_err();
    c.batch_execute("commit").await.unwrap();
    let bal: i64 = c
        .query_one("select bal from acct", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(bal, 1);

    // Postgres spellings of transaction control work.
    c.batch_execute(
        "start transaction isolation level serializable; update acct set bal = 7; commit work",
    )
    .await
    .unwrap();
    let bal: i64 = c
        .query_one("select bal from acct", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(bal, 7);
}

#[tokio::test]
async fn errors_carry_sqlstates_and_the_session_recovers() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    c.batch_execute(
        "create table parent(id integer primary key);
         create table child(id integer primary key, pid integer not null references parent(id), n integer check (n > 0), u text unique);
         insert into parent values (1);",
    )
    .await
    .unwrap();
    let cases: &[(&str, SqlState)] = &[
        ("selec 1", SqlState::SYNTAX_ERROR),
        ("select * from nosuch", SqlState::UNDEFINED_TABLE),
        ("select nosuch from parent", SqlState::UNDEFINED_COLUMN),
        ("insert into parent values (1)", SqlState::UNIQUE_VIOLATION),
        (
            "insert into child values (1, null, 1, 'a')",
            SqlState::NOT_NULL_VIOLATION,
        ),
        (
            "insert into child values (1, 42, 1, 'a')",
            SqlState::FOREIGN_KEY_VIOLATION,
        ),
        (
            "insert into child values (1, 1, -1, 'a')",
            SqlState::CHECK_VIOLATION,
        ),
        ("create table parent(x integer)", SqlState::DUPLICATE_TABLE),
    ];
    for (sql, code) in cases {
        let err = c.batch_execute(sql).await.unwrap_err();
        assert_eq!(err.code(), Some(code), "{sql}: {err:?}");
        let err = c.execute(*sql, &[]).await.unwrap_err();
        assert_eq!(err.code(), Some(code), "extended {sql}: {err:?}");
        // The connection keeps working.
        c.query_one("select 1", &[]).await.unwrap();
    }
    let err = c
        .batch_execute("select 1; select 2; selec 3; select 4")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::SYNTAX_ERROR));
    let err = c.prepare("select 1; select 2").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::SYNTAX_ERROR));
}

#[tokio::test]
async fn client_introspection_is_answered() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    let v: String = c.query_one("select version()", &[]).await.unwrap().get(0);
    assert!(v.contains("sqld"), "{v}");
    let db: String = c
        .query_one("select current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(db, "sqld");
    let schema: String = c
        .query_one("select current_schema()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(schema, "public");
    c.batch_execute(
        "SET application_name = 'tests'; SET extra_float_digits = 3; SET TIME ZONE 'UTC'",
    )
    .await
    .unwrap();
    let msgs = c.simple_query("SHOW application_name").await.unwrap();
    assert_eq!(simple_rows(&msgs), vec![vec![Some("tests".into())]]);
    let row = c
        .query_one("SHOW transaction_isolation", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "serializable");
    let err = c.batch_execute("SHOW no_such_setting").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_OBJECT));
    // tokio-postgres' own lookup of type OIDs it does not know.
    let row = c
        .query_one(
            "SELECT t.typname, t.typtype, t.typelem, r.rngsubtype, t.typbasetype, n.nspname, t.typrelid
             FROM pg_catalog.pg_type t
             LEFT OUTER JOIN pg_catalog.pg_range r ON r.rngtypid = t.oid
             INNER JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid
             WHERE t.oid = $1",
            &[&20u32],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "int8");
    c.batch_execute("DISCARD ALL; RESET ALL").await.unwrap();
}

#[tokio::test]
async fn cancel_request_interrupts_a_running_statement() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    let token = c.cancel_token();
    let slow =
        "with recursive c(x) as (select 1 union all select x+1 from c) select count(*) from c";
    let running = tokio::spawn(async move {
        let r = c.batch_execute(slow).await;
        (r, c)
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let (result, c) = tokio::time::timeout(std::time::Duration::from_secs(10), running)
        .await
        .expect("cancel took effect")
        .unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED));
    assert!(message(&err).contains("user request"), "{err:?}");
    c.query_one("select 1", &[]).await.unwrap();
}

#[tokio::test]
async fn a_long_statement_blocks_no_other_connection() {
    let sqld = Sqld::start_with(&["--dev", "--statement-timeout", "3s"]);
    let busy = connections(&sqld, 3).await;
    let slow =
        "with recursive c(x) as (select 1 union all select x+1 from c) select count(*) from c";
    let running: Vec<_> = busy
        .into_iter()
        .map(|c| tokio::spawn(async move { c.batch_execute(slow).await }))
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Three connections are stuck in SQLite; a fourth is served at once.
    let other = sqld.connect().await;
    let started = std::time::Instant::now();
    for _ in 0..20 {
        other.query_one("select 1", &[]).await.unwrap();
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "served in {:?}",
        started.elapsed()
    );
    for r in running {
        let err = r.await.unwrap().unwrap_err();
        assert!(message(&err).contains("statement timeout"), "{err:?}");
    }
}

fn message(err: &tokio_postgres::Error) -> &str {
    err.as_db_error().map(|e| e.message()).unwrap_or("")
}

async fn connections(sqld: &Sqld, n: usize) -> Vec<tokio_postgres::Client> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(sqld.connect().await);
    }
    out
}

#[tokio::test]
async fn statement_timeout_interrupts() {
    let sqld = Sqld::start_with(&["--dev", "--statement-timeout", "200ms"]);
    let c = sqld.connect().await;
    let slow =
        "with recursive c(x) as (select 1 union all select x+1 from c) select count(*) from c";
    let started = std::time::Instant::now();
    let err = c.batch_execute(slow).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED));
    assert!(message(&err).contains("statement timeout"), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    c.query_one("select 1", &[]).await.unwrap();
}

#[tokio::test]
async fn idle_in_transaction_sessions_are_closed() {
    let sqld = Sqld::start_with(&["--dev", "--idle-in-transaction-timeout", "300ms"]);
    let c = sqld.connect().await;
    c.batch_execute("begin").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    assert!(c.batch_execute("select 1").await.is_err());
    // Idle outside a transaction is fine.
    let c = sqld.connect().await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    c.batch_execute("select 1").await.unwrap();
}

#[tokio::test]
async fn max_connections_refuses_with_53300() {
    let sqld = Sqld::start_with(&["--dev", "--max-connections", "2"]);
    // Let the harness' readiness probes release their slots.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let a = sqld.connect().await;
    let b = sqld.connect().await;
    let err = tokio_postgres::connect(&sqld.conn_str(), tokio_postgres::NoTls)
        .await
        .err()
        .expect("third connection is refused");
    assert_eq!(err.code(), Some(&SqlState::TOO_MANY_CONNECTIONS), "{err:?}");
    drop(a);
    // Once a slot frees, connections are accepted again.
    let mut ok = false;
    for _ in 0..50 {
        if tokio_postgres::connect(&sqld.conn_str(), tokio_postgres::NoTls)
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ok);
    b.query_one("select 1", &[]).await.unwrap();
}

#[tokio::test]
async fn scram_password_authentication() {
    let tmp = tempfile::tempdir().unwrap();
    let users = tmp.path().join("users");
    std::fs::write(&users, "# comment\nalice:s3cret\nbob:other\n").unwrap();
    let sqld = Sqld::start_with(&["--users-file", users.to_str().unwrap()]);
    let good = format!(
        "host=127.0.0.1 port={} user=alice password=s3cret",
        sqld.port()
    );
    let c = sqld.connect_with(&good).await;
    c.query_one("select 1", &[]).await.unwrap();
    for bad in [
        format!(
            "host=127.0.0.1 port={} user=alice password=wrong",
            sqld.port()
        ),
        format!(
            "host=127.0.0.1 port={} user=nobody password=s3cret",
            sqld.port()
        ),
    ] {
        let err = tokio_postgres::connect(&bad, tokio_postgres::NoTls)
            .await
            .err()
            .unwrap();
        assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err:?}");
    }
}

#[tokio::test]
async fn cleartext_password_authentication() {
    let sqld = Sqld::start_with(&["--auth", "cleartext", "--password", "pw", "--user", "carol"]);
    let good = format!("host=127.0.0.1 port={} user=carol password=pw", sqld.port());
    sqld.connect_with(&good)
        .await
        .query_one("select 1", &[])
        .await
        .unwrap();
    let bad = format!(
        "host=127.0.0.1 port={} user=carol password=nope",
        sqld.port()
    );
    let err = tokio_postgres::connect(&bad, tokio_postgres::NoTls)
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err:?}");
}

#[tokio::test]
async fn concurrent_writers_all_commit() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    c.batch_execute("create table counter(id integer primary key, n integer); insert into counter values (1, 0)")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = sqld.connect().await;
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                c.execute("update counter set n = n + 1 where id = $1", &[&1i64])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n: i64 = c
        .query_one("select n from counter", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 400);
}

#[tokio::test]
async fn a_writer_waits_for_an_open_write_transaction_then_fails_with_55p03() {
    let sqld = Sqld::start_with(&["--dev", "--busy-timeout", "300ms"]);
    let a = sqld.connect().await;
    let b = sqld.connect().await;
    a.batch_execute(
        "create table t(id integer primary key, n integer); insert into t values (1, 0)",
    )
    .await
    .unwrap();
    a.batch_execute("begin; update t set n = 1 where id = 1")
        .await
        .unwrap();
    // A transaction that only reads is not held up by the writer.
    b.batch_execute("begin").await.unwrap();
    let n: i64 = b
        .query_one("select n from t where id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    b.batch_execute("rollback").await.unwrap();
    // A second writer waits out the busy timeout, then gets 55P03; the
    // first transaction is untouched and commits.
    let started = std::time::Instant::now();
    let err = b
        .execute("update t set n = 2 where id = 1", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "55P03", "{err}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    a.batch_execute("commit").await.unwrap();
    // Once the writer is done, the next one goes through at once.
    b.execute("update t set n = n + 10 where id = 1", &[])
        .await
        .unwrap();
    let n: i64 = a
        .query_one("select n from t where id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 11);
    // BEGIN IMMEDIATE takes the write lock (and the gate) at once.
    a.batch_execute("begin immediate").await.unwrap();
    let err = b
        .execute("insert into t values (2, 0)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "55P03", "{err}");
    a.batch_execute("rollback").await.unwrap();
    b.execute("insert into t values (2, 0)", &[]).await.unwrap();
}

/// Waiting for the write lock is part of the statement, as a lock wait is
/// in Postgres: a statement timeout shorter than the busy timeout ends it
/// with 57014.
#[tokio::test]
async fn the_statement_timeout_bounds_a_wait_for_the_write_lock() {
    let sqld = Sqld::start_with(&["--dev", "--busy-timeout", "60s"]);
    let a = sqld.connect().await;
    let b = sqld.connect().await;
    a.batch_execute("create table t(id integer primary key); begin; insert into t values (1)")
        .await
        .unwrap();
    b.batch_execute("set statement_timeout = 200")
        .await
        .unwrap();
    let err = b
        .execute("insert into t values (2)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "57014", "{err}");
    a.batch_execute("commit").await.unwrap();
    b.execute("insert into t values (2)", &[]).await.unwrap();
}
