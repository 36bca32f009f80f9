//! The sandbox: SQL cannot reach the server's file system or process.
//! Each denied operation fails with 42501 and the session goes on.

mod common;

use common::Sqld;
use tokio_postgres::error::SqlState;

#[tokio::test]
async fn file_touching_sql_is_denied_with_42501() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    let outside = sqld.db_dir.parent().unwrap().join("stolen.db");
    let denied = [
        format!("ATTACH DATABASE '{}' AS x", outside.display()),
        "DETACH DATABASE pg_catalog".to_string(),
        "SELECT load_extension('/lib/x86_64-linux-gnu/libc.so.6')".to_string(),
        format!("VACUUM INTO '{}'", outside.display()),
        "PRAGMA journal_mode = DELETE".to_string(),
        "PRAGMA synchronous = OFF".to_string(),
        "PRAGMA writable_schema = ON".to_string(),
        "PRAGMA temp_store_directory = '/tmp'".to_string(),
        "PRAGMA locking_mode = EXCLUSIVE".to_string(),
        "PRAGMA wal_autocheckpoint = 0".to_string(),
        "INSERT INTO pg_catalog.pg_type(oid, typname) VALUES (1, 'x')".to_string(),
    ];
    for sql in &denied {
        let err = c.batch_execute(sql).await.expect_err(sql);
        assert_eq!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err:?}"
        );
        c.query_one("select 1", &[]).await.unwrap();
    }
    assert!(
        !outside.exists(),
        "nothing was written outside the data directory"
    );
    // Harmless PRAGMAs still work.
    c.batch_execute("create table t(a integer)").await.unwrap();
    c.batch_execute("PRAGMA table_info(t)").await.unwrap();
    c.batch_execute("PRAGMA foreign_keys = ON").await.unwrap();
    // Plain VACUUM (which attaches a private temporary database) and
    // in-memory attachments touch no path of the client's choosing.
    c.batch_execute("VACUUM").await.unwrap();
    c.batch_execute("ATTACH ':memory:' AS scratch; DETACH scratch")
        .await
        .unwrap();
    let row = c.query_one("PRAGMA journal_mode", &[]).await;
    assert!(row.is_err(), "reading journal_mode is denied too");
}

/// Spellings that once slipped past a check of literal filenames, and the
/// other ways SQL could reach files, raw pages or native code.
#[tokio::test]
async fn computed_names_and_raw_pages_are_denied_too() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    let outside = sqld.db_dir.parent().unwrap().join("planted.db");
    let live = sqld.db_dir.join("data.db");
    c.batch_execute("create table t(a integer); insert into t values (1)")
        .await
        .unwrap();
    let denied = [
        format!("ATTACH '{}' || '' AS f", outside.display()),
        format!("ATTACH lower('{}') AS f", outside.display()),
        format!("ATTACH '{}' || '' AS again", live.display()),
        "ATTACH (SELECT file FROM pragma_database_list WHERE name = 'main') AS again".to_string(),
        format!("ATTACH 'file:{}?mode=rwc' AS f", outside.display()),
        "ATTACH 'file::memory:?cache=shared' AS f".to_string(),
        format!("VACUUM INTO '{}' || ''", outside.display()),
        "SELECT fts3_tokenizer('simple')".to_string(),
        "PRAGMA cache_size = 100000000".to_string(),
        "PRAGMA mmap_size = 0".to_string(),
        "PRAGMA wal_checkpoint(TRUNCATE)".to_string(),
        "PRAGMA page_size = 512".to_string(),
    ];
    for sql in &denied {
        let err = c.batch_execute(sql).await.expect_err(sql);
        assert_eq!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err:?}"
        );
    }
    assert!(
        !outside.exists(),
        "a file was created outside the data directory"
    );
    // Raw pages: read or written through sqlite_dbpage where it is compiled
    // in; either way no row comes back.
    for sql in [
        "SELECT data FROM sqlite_dbpage WHERE pgno = 1",
        "UPDATE sqlite_dbpage SET data = zeroblob(4096) WHERE pgno = 2",
    ] {
        let err = c.batch_execute(sql).await.expect_err(sql);
        assert!(
            matches!(
                err.code(),
                Some(&SqlState::INSUFFICIENT_PRIVILEGE) | Some(&SqlState::UNDEFINED_TABLE)
            ),
            "{sql}: {err:?}"
        );
    }
    let n = common::scalar(&c, "select count(*) from t").await;
    assert_eq!(n, 1, "the session and the database are intact");
}

/// A trigger or view stored by one client runs in other clients' sessions:
/// a denied function inside it is denied there too, every time.
#[tokio::test]
async fn triggers_and_views_cannot_carry_a_denied_function_to_another_session() {
    let sqld = Sqld::start();
    let author = sqld.connect().await;
    author
        .batch_execute(
            "create table t(a integer);
             create table audit(x);
             create trigger t_ins after insert on t
               begin insert into audit values (load_extension('/tmp/evil.so')); end;
             create view v as select load_extension('/tmp/evil.so') as x;",
        )
        .await
        .unwrap();
    let victim = sqld.connect().await;
    for sql in ["insert into t values (1)", "select * from v"] {
        let err = victim.batch_execute(sql).await.expect_err(sql);
        assert_eq!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err:?}"
        );
    }
    let n = common::scalar(&victim, "select count(*) from t").await;
    assert_eq!(n, 0, "the insert whose trigger was denied did not happen");
}

/// Values too large for the server's memory fail with 54000; the session
/// goes on.
#[tokio::test]
async fn huge_values_fail_with_program_limit_exceeded() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    for sql in [
        "select length(randomblob(1000000000))",
        "select length(zeroblob(1000000000) || 'x')",
        "select length(replace(hex(zeroblob(100000000)), '0', '00'))",
    ] {
        let err = c.query_one(sql, &[]).await.expect_err(sql);
        assert_eq!(
            err.code(),
            Some(&SqlState::PROGRAM_LIMIT_EXCEEDED),
            "{sql}: {err:?}"
        );
    }
    // printf past the limit yields NULL rather than the string.
    let printed: Option<i32> = c
        .query_one("select length(printf('%.*c', 1000000000, 'x'))", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(printed, None);
    c.query_one("select 1", &[]).await.unwrap();
}

/// `PRAGMA optimize` and `ANALYZE` cover every attached database, the
/// session's catalog included: they work, and the catalog stays closed.
#[tokio::test]
async fn optimize_and_analyze_are_allowed() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    c.batch_execute(
        "create table t(a integer, b text); create index t_b on t(b);
         insert into t values (1, 'x'), (2, 'y'), (3, 'z');",
    )
    .await
    .unwrap();
    for sql in [
        "PRAGMA optimize",
        "PRAGMA optimize(0x10002)",
        "PRAGMA main.optimize",
        "ANALYZE",
        "ANALYZE t",
    ] {
        c.batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
    let analyzed = common::scalar(
        &c,
        "select count(*) from main.sqlite_stat1 where idx = 't_b'",
    )
    .await;
    assert_eq!(analyzed, 1);
    for sql in [
        "CREATE TABLE pg_catalog.planted(x)",
        "DROP TABLE pg_catalog.sqlite_stat1",
        "DELETE FROM pg_catalog.pg_type",
    ] {
        let err = c.batch_execute(sql).await.expect_err(sql);
        assert_eq!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err:?}"
        );
    }
}

/// Once the trigger carrying a denied function is dropped, other sessions
/// write again at once, without reconnecting, by either protocol.
#[tokio::test]
async fn dropping_a_denied_trigger_frees_other_sessions() {
    let sqld = Sqld::start();
    let author = sqld.connect().await;
    author
        .batch_execute(
            "create table t(a integer);
             create trigger t_ins after insert on t
               begin select load_extension('/tmp/evil.so'); end;",
        )
        .await
        .unwrap();
    let simple = sqld.connect().await;
    let extended = sqld.connect().await;
    for _ in 0..2 {
        let err = simple
            .batch_execute("insert into t values (1)")
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
        let err = extended
            .execute("insert into t values ($1)", &[&2i64])
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    }
    author.batch_execute("drop trigger t_ins").await.unwrap();
    simple
        .batch_execute("insert into t values (1)")
        .await
        .unwrap();
    extended
        .execute("insert into t values ($1)", &[&2i64])
        .await
        .unwrap();
    assert_eq!(common::scalar(&author, "select count(*) from t").await, 2);
}
