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
