//! `pg_stat_activity` and `pg_stat_replication` against the real binary:
//! sessions seen in their states with their text, gone once closed; a
//! replica's position on its primary, advancing with writes and gone
//! once the replica is.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Sqld;

/// One row of `pg_stat_activity`, as these tests look at it.
#[derive(Debug, Clone, PartialEq)]
struct Activity {
    pid: i64,
    application_name: String,
    state: String,
    query: String,
    in_transaction: bool,
}

async fn activity(c: &tokio_postgres::Client) -> Vec<Activity> {
    c.query(
        "select pid, application_name, state, query, xact_start
             from pg_stat_activity order by pid",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| Activity {
        pid: r.get(0),
        application_name: r.get(1),
        state: r.get(2),
        query: r.get(3),
        in_transaction: r.get::<_, Option<String>>(4).is_some(),
    })
    .collect()
}

async fn named(s: &Sqld, name: &str) -> tokio_postgres::Client {
    s.connect_with(&format!("{} application_name={name}", s.conn_str()))
        .await
}

async fn backend_pid(c: &tokio_postgres::Client) -> i64 {
    let row = c.query_one("select pg_backend_pid()", &[]).await.unwrap();
    row.get(0)
}

fn row_of(rows: &[Activity], pid: i64) -> Activity {
    rows.iter()
        .find(|r| r.pid == pid)
        .cloned()
        .unwrap_or_else(|| panic!("no row for pid {pid} in {rows:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_are_seen_in_their_states_until_they_close() {
    let sqld = Sqld::start();
    let watcher = named(&sqld, "watcher").await;
    let idle = named(&sqld, "idle_one").await;
    let in_txn = named(&sqld, "in_txn").await;
    let blocked = named(&sqld, "blocked").await;
    watcher
        .batch_execute("create table t (id integer primary key)")
        .await
        .unwrap();

    let watcher_pid = backend_pid(&watcher).await;
    let idle_pid = backend_pid(&idle).await;
    let txn_pid = backend_pid(&in_txn).await;
    let blocked_pid = backend_pid(&blocked).await;
    assert_eq!(
        std::collections::HashSet::from([watcher_pid, idle_pid, txn_pid, blocked_pid]).len(),
        4,
        "each session has a pid of its own"
    );

    idle.batch_execute("select 42").await.unwrap();
    in_txn
        .batch_execute("begin; insert into t values (1)")
        .await
        .unwrap();
    // Waits for the write lock `in_txn` holds.
    let blocked_insert = tokio::spawn(async move {
        let r = blocked.batch_execute("insert into t values (2)").await;
        (blocked, r)
    });
    let deadline = Instant::now() + Duration::from_secs(4);
    let rows = loop {
        let rows = activity(&watcher).await;
        if rows
            .iter()
            .any(|r| r.pid == blocked_pid && r.state == "active")
        {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "the blocked insert never showed active: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let me = row_of(&rows, watcher_pid);
    assert_eq!(me.state, "active");
    assert!(me.query.contains("from pg_stat_activity"), "{me:?}");
    assert_eq!(me.application_name, "watcher");

    let i = row_of(&rows, idle_pid);
    assert_eq!(
        (
            i.state.as_str(),
            i.query.as_str(),
            i.application_name.as_str(),
            i.in_transaction
        ),
        ("idle", "select 42", "idle_one", false)
    );
    let t = row_of(&rows, txn_pid);
    assert_eq!(
        (t.state.as_str(), t.query.as_str(), t.in_transaction),
        (
            "idle in transaction",
            "begin; insert into t values (1)",
            true
        )
    );
    let b = row_of(&rows, blocked_pid);
    assert_eq!(b.query, "insert into t values (2)");
    assert_eq!(b.application_name, "blocked");

    in_txn.batch_execute("commit").await.unwrap();
    let (blocked, inserted) = blocked_insert.await.unwrap();
    inserted.unwrap();
    let rows = activity(&watcher).await;
    assert_eq!(row_of(&rows, blocked_pid).state, "idle");
    assert_eq!(row_of(&rows, txn_pid).state, "idle");

    // A failed transaction.
    in_txn
        .batch_execute("begin; select * from no_such_table")
        .await
        .unwrap_err();
    let rows = activity(&watcher).await;
    assert_eq!(
        row_of(&rows, txn_pid).state,
        "idle in transaction (aborted)"
    );

    drop(idle);
    drop(blocked);
    let mut seen = Vec::new();
    for _ in 0..200 {
        seen = activity(&watcher).await.iter().map(|r| r.pid).collect();
        if !seen.contains(&idle_pid) && !seen.contains(&blocked_pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, {
        let mut left = vec![watcher_pid, txn_pid];
        left.sort();
        left
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn long_texts_are_cut_at_one_kibibyte_and_the_view_has_postgres_columns() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    let long = format!("select '{}'", "x".repeat(3000));
    c.batch_execute(&long).await.unwrap();
    let other = sqld.connect().await;
    // The view's columns are typed by their values: a pid is compared
    // as a literal (a bound parameter would be taken for text).
    let sql = format!(
        "select query, datname, usename, backend_type, client_addr,
             backend_start, wait_event
             from pg_catalog.pg_stat_activity where pid = {}",
        backend_pid_of(&c).await
    );
    let row = other.query_one(&sql, &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), long[..1024]);
    assert_eq!(row.get::<_, String>(1), "sqld");
    assert_eq!(row.get::<_, String>(2), "sqld");
    assert_eq!(row.get::<_, String>(3), "client backend");
    assert_eq!(row.get::<_, String>(4), "127.0.0.1");
    assert!(row.get::<_, String>(5).ends_with("+00"));
    assert_eq!(row.get::<_, Option<String>>(6), None);
}

/// The pid without disturbing the session's last query afterwards: taken
/// first, then the long text is run again.
async fn backend_pid_of(c: &tokio_postgres::Client) -> i64 {
    let pid = backend_pid(c).await;
    c.batch_execute(&format!("select '{}'", "x".repeat(3000)))
        .await
        .unwrap();
    pid
}

#[test]
fn psql_selects_everything_from_pg_stat_activity() {
    let sqld = Sqld::start();
    let out = Command::new("psql")
        .args(["-X", "-w", "-At", "-d", &sqld.conn_str()])
        .args(["-c", "select * from pg_stat_activity"])
        .env("PGAPPNAME", "psql_probe")
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(Stdio::null())
        .output()
        .expect("psql (Debian's postgresql-client) must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.contains("psql_probe"))
        .unwrap_or_else(|| panic!("psql's own row is missing: {stdout}"));
    assert!(line.contains("|active|"), "{line}");
    assert!(line.contains("select * from pg_stat_activity"), "{line}");
}

/// (application_name, replay_lsn as a frame number, lag_frames) of each
/// replica the primary shows.
async fn replicas(c: &tokio_postgres::Client) -> Vec<(String, u64, i64)> {
    c.query(
        "select application_name, replay_lsn, lag_frames, state from pg_stat_replication",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| {
        assert_eq!(r.get::<_, String>(3), "streaming");
        let lsn: String = r.get(1);
        (r.get(0), lsn.parse().unwrap(), r.get(2))
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_shows_on_its_primary_with_an_advancing_position() {
    let primary = Sqld::start();
    let p = primary.connect().await;
    p.batch_execute("create table t (id integer primary key)")
        .await
        .unwrap();
    let mut replica = Sqld::replica_of(&primary, &[]);
    replica.wait_ready();
    let r = replica.connect().await;
    assert!(
        replicas(&r).await.is_empty(),
        "a replica has no replicas of its own"
    );

    let caught_up = |rows: &[(String, u64, i64)]| rows.len() == 1 && rows[0].2 == 0;
    let mut rows = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !caught_up(&rows) {
        assert!(Instant::now() < deadline, "replica never shown: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        rows = replicas(&p).await;
    }
    let (name, before, _) = rows[0].clone();
    assert!(!name.is_empty());
    assert!(before > 0, "the replica holds the CREATE TABLE");

    for i in 0..5i64 {
        p.execute("insert into t values ($1)", &[&i]).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        rows = replicas(&p).await;
        if caught_up(&rows) && rows[0].1 > before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "position never advanced: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rows[0].0, name, "the same replica, under the same name");
    let pid_before: i64 = p
        .query_one("select pid from pg_stat_replication", &[])
        .await
        .unwrap()
        .get(0);
    assert!(pid_before > 0);

    // Killed: gone once its last poll is older than the 30 s window.
    replica.kill9();
    let killed = Instant::now();
    while !replicas(&p).await.is_empty() {
        assert!(
            killed.elapsed() < Duration::from_secs(40),
            "the killed replica is still shown"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
