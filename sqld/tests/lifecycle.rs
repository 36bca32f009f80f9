//! Durability and process lifecycle: acknowledged commits survive kill -9,
//! SIGTERM exits cleanly, and the HTTP endpoints tell the truth.

mod common;

use common::Sqld;

#[tokio::test]
async fn acknowledged_commits_survive_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let mut sqld = Sqld::spawn(&dir, &["--dev"]);
    let c = sqld.connect().await;
    c.batch_execute("create table log(id integer primary key, v text)")
        .await
        .unwrap();
    for i in 0..200i64 {
        c.execute(
            "insert into log values ($1, $2)",
            &[&i, &format!("row {i}")],
        )
        .await
        .unwrap();
    }
    c.batch_execute("begin; insert into log values (1000, 'in txn'); commit")
        .await
        .unwrap();
    // An uncommitted transaction must vanish.
    c.batch_execute("begin; insert into log values (2000, 'never committed')")
        .await
        .unwrap();
    sqld.kill9();

    let sqld = Sqld::spawn(&dir, &["--dev"]);
    let c = sqld.connect().await;
    let n: i64 = c
        .query_one("select count(*) from log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 201);
    let v: String = c
        .query_one("select v from log where id = 199", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "row 199");
    assert!(c
        .query_opt("select 1 from log where id = 2000", &[])
        .await
        .unwrap()
        .is_none());
}

/// The database belongs to the server while it runs (SQLite's `unix-excl`
/// locking: its connections coordinate in memory, without file locks per
/// transaction); other processes can open it once the server has stopped.
#[tokio::test]
async fn the_database_file_is_locked_while_the_server_runs() {
    use libsql_sys::rusqlite::Connection;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let mut sqld = Sqld::spawn(&dir, &["--dev"]);
    let c = sqld.connect().await;
    c.batch_execute("create table t(a integer); insert into t values (7)")
        .await
        .unwrap();
    let outside = Connection::open(dir.join("data.db")).unwrap();
    let err = outside
        .query_row("select count(*) from t", [], |r| r.get::<_, i64>(0))
        .unwrap_err();
    assert!(err.to_string().contains("locked"), "{err}");
    drop(outside);
    assert!(sqld.terminate().success());
    let outside = Connection::open(dir.join("data.db")).unwrap();
    let a: i64 = outside
        .query_row("select a from t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(a, 7);
}

#[tokio::test]
async fn sigterm_checkpoints_and_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let mut sqld = Sqld::spawn(&dir, &["--dev", "--shutdown-grace-period", "5s"]);
    let c = sqld.connect().await;
    c.batch_execute("create table t(a integer); insert into t values (1)")
        .await
        .unwrap();
    let status = sqld.terminate();
    assert!(status.success(), "{status:?}");
    let wal = dir.join("data.db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal_len, 0, "the WAL was checkpointed into the database");
    // The idle session was told why it was closed.
    assert!(c.query_one("select 1", &[]).await.is_err());
    let sqld = Sqld::spawn(&dir, &["--dev"]);
    let c = sqld.connect().await;
    let n: i64 = c
        .query_one("select count(*) from t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let sqld = Sqld::start();
    assert_eq!(sqld.http_get("/health").0, 200);
    assert_eq!(sqld.http_get("/ready").0, 200);
    let c = sqld.connect().await;
    c.batch_execute("create table t(a integer); insert into t values (1)")
        .await
        .unwrap();
    let _ = c.batch_execute("select nosuch").await;
    let (status, body) = sqld.http_get("/metrics");
    assert_eq!(status, 200);
    for name in [
        "sqld_connections ",
        "sqld_connections_total",
        "sqld_connections_rejected_total",
        "sqld_statements_total{kind=\"INSERT\",outcome=\"ok\"}",
        "sqld_errors_total{class=\"42\",kind=\"execute\"}",
        "sqld_statement_duration_seconds_bucket",
        "sqld_bytes_received_total",
        "sqld_bytes_sent_total",
        "sqld_database_size_bytes",
        "sqld_wal_size_bytes",
    ] {
        assert!(body.contains(name), "missing {name} in\n{body}");
    }
}

#[test]
fn password_mode_without_users_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sqld"))
        .args([
            "--db-path",
            tmp.path().to_str().unwrap(),
            "--pg-listen-addr",
            "127.0.0.1:0",
            "--http-listen-addr",
            "127.0.0.1:0",
        ])
        .env_remove("SQLD_PASSWORD")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SQLD_PASSWORD"), "{stderr}");
}

#[test]
fn tls_with_psql_sslmode_require() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = common::self_signed_cert(tmp.path());
    let sqld = Sqld::start_with(&[
        "--dev",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let psql = |sslmode: &str| {
        std::process::Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &sqld.port().to_string(),
                "-U",
                "sqld",
                "-At",
            ])
            .args(["-c", "select 'over tls'"])
            .env("PGSSLMODE", sslmode)
            .output()
            .expect("psql (postgresql-client) is needed")
    };
    let out = psql("require");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "over tls");
    // A server without TLS refuses sslmode=require clients.
    let plain = Sqld::start();
    let out = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &plain.port().to_string(),
            "-U",
            "sqld",
            "-c",
            "select 1",
        ])
        .env("PGSSLMODE", "require")
        .output()
        .unwrap();
    assert!(!out.status.success());
}
