//! Replication with real processes: a primary and replicas on loopback,
//! killed and restarted. Reads on replicas, writes forwarded, read-your-
//! writes, serializable transactions through replicas, bootstrap, resume,
//! re-bootstrap on a new log, compaction, and the replication token.

mod common;

use std::time::{Duration, Instant};

use common::{metric, Sqld};
use tokio_postgres::error::SqlState;

async fn count(c: &tokio_postgres::Client, table: &str) -> i64 {
    common::scalar(c, &format!("select count(*) from {table}")).await
}

/// Polls until `table` exists on the replica `r` is connected to.
async fn table_reaches(r: &tokio_postgres::Client, table: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while r
        .batch_execute(&format!("select 1 from {table}"))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "{table} never reached the replica"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `count(*)` until it reaches `n` (replication is asynchronous).
async fn eventually_count(c: &tokio_postgres::Client, table: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = count(c, table).await;
        if got == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{table} has {got} rows, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn replica_bootstraps_and_follows_the_primary() {
    let primary = Sqld::start();
    let p = primary.connect().await;
    p.batch_execute("create table t(id integer primary key, v text)")
        .await
        .unwrap();
    for i in 0..100i64 {
        p.execute("insert into t values ($1, $2)", &[&i, &format!("v{i}")])
            .await
            .unwrap();
    }
    let replica = Sqld::replica_of(&primary, &[]);
    replica.wait_ready();
    let r = replica.connect().await;
    assert_eq!(count(&r, "t").await, 100);
    // Later commits arrive by long-poll, whole transactions only.
    p.batch_execute(
        "begin; insert into t values (1000, 'a'); insert into t values (1001, 'b'); commit",
    )
    .await
    .unwrap();
    eventually_count(&r, "t", 102).await;
    let v: String = r
        .query_one("select v from t where id = $1", &[&1001i64])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "b");
    assert!(metric(&replica, "sqld_replication_frame_no") > 0.0);
    replica.wait_ready();
    assert_eq!(metric(&replica, "sqld_replication_lag_frames"), 0.0);
    assert_eq!(metric(&replica, "sqld_replication_lag_seconds"), 0.0);
    assert_eq!(metric(&primary, "sqld_replicas_connected"), 1.0);
    let second = Sqld::replica_of(&primary, &[]);
    second.wait_ready();
    assert_eq!(metric(&primary, "sqld_replicas_connected"), 2.0);
}

#[tokio::test]
async fn writes_through_a_replica_are_forwarded_and_read_back_at_once() {
    let primary = Sqld::start();
    let replica = Sqld::replica_of(&primary, &[]);
    replica.wait_ready();
    let r = replica.connect().await;
    // DDL and writes go to the primary; the same connection then reads
    // its own writes on the replica, with no sleep in between.
    r.batch_execute("create table kv(k integer primary key, v text)")
        .await
        .unwrap();
    for k in 0..20i64 {
        let n = r
            .execute("insert into kv values ($1, $2)", &[&k, &format!("v{k}")])
            .await
            .unwrap();
        assert_eq!(n, 1);
        let v: String = r
            .query_one("select v from kv where k = $1", &[&k])
            .await
            .unwrap()
            .get(0);
        assert_eq!(v, format!("v{k}"));
    }
    let row = r
        .query_one("insert into kv values (100, 'x') returning k, v", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 100);
    // The primary's errors come back unchanged.
    let err = r
        .execute("insert into kv values (1, 'dup')", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    let p = primary.connect().await;
    assert_eq!(count(&p, "kv").await, 21);
}

#[tokio::test]
async fn a_transaction_through_a_replica_runs_on_the_primary() {
    let primary = Sqld::start();
    let p = primary.connect().await;
    p.batch_execute(
        "create table acct(id integer primary key, bal integer); insert into acct values (1, 100)",
    )
    .await
    .unwrap();
    let replica = Sqld::replica_of(&primary, &[]);
    replica.wait_ready();
    let r = replica.connect().await;
    r.batch_execute("begin").await.unwrap();
    let bal: i64 = r
        .query_one("select bal from acct where id = 1", &[])
        .await
        .unwrap()
        .get(0);
    r.execute("update acct set bal = $1 where id = 1", &[&(bal - 30)])
        .await
        .unwrap();
    // Inside the transaction, reads see its own uncommitted write.
    let mid: i64 = r
        .query_one("select bal from acct where id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(mid, 70);
    r.batch_execute("rollback").await.unwrap();
    let after: i64 = r
        .query_one("select bal from acct where id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(after, 100);
    r.batch_execute("begin; update acct set bal = bal + 1 where id = 1; commit")
        .await
        .unwrap();
    let after: i64 = r
        .query_one("select bal from acct where id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(after, 101);
}

/// Two clients increment one counter through two replicas, each with a
/// read-then-write transaction; 40001 means retry. No increment is lost.
#[tokio::test]
async fn no_lost_update_through_two_replicas() {
    let primary = Sqld::start();
    let p = primary.connect().await;
    p.batch_execute("create table counter(id integer primary key, n integer); insert into counter values (1, 0)")
        .await
        .unwrap();
    let replicas = [
        Sqld::replica_of(&primary, &[]),
        Sqld::replica_of(&primary, &[]),
    ];
    for r in &replicas {
        r.wait_ready();
    }
    const PER_CLIENT: i64 = 25;
    let mut tasks = Vec::new();
    for r in &replicas {
        let c = r.connect().await;
        tasks.push(tokio::spawn(async move {
            let mut retries = 0;
            for _ in 0..PER_CLIENT {
                loop {
                    let attempt = async {
                        c.batch_execute("begin").await?;
                        let n: i64 = c
                            .query_one("select n from counter where id = 1", &[])
                            .await?
                            .get(0);
                        c.execute("update counter set n = $1 where id = 1", &[&(n + 1)])
                            .await?;
                        c.batch_execute("commit").await
                    };
                    match attempt.await {
                        Ok(()) => break,
                        Err(e) if e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE) => {
                            retries += 1;
                            let _ = c.batch_execute("rollback").await;
                        }
                        Err(e) => panic!("unexpected error: {e:?}"),
                    }
                }
            }
            retries
        }));
    }
    let mut retries = 0;
    for t in tasks {
        retries += t.await.unwrap();
    }
    let n: i64 = p
        .query_one("select n from counter where id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        n,
        2 * PER_CLIENT,
        "every increment survived ({retries} retries)"
    );
}

#[tokio::test]
async fn a_restarted_replica_resumes_without_bootstrapping() {
    let primary = Sqld::start();
    let p = primary.connect().await;
    p.batch_execute("create table t(id integer primary key)")
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    let mut replica = Sqld::replica_on(&dir, &primary, &[]);
    replica.wait_ready();
    assert_eq!(metric(&replica, "sqld_replication_bootstraps_total"), 1.0);
    p.batch_execute("insert into t values (1)").await.unwrap();
    eventually_count(&replica.connect().await, "t", 1).await;
    replica.kill9();
    for i in 2..=50i64 {
        p.execute("insert into t values ($1)", &[&i]).await.unwrap();
    }
    let replica = Sqld::replica_on(&dir, &primary, &[]);
    replica.wait_ready();
    eventually_count(&replica.connect().await, "t", 50).await;
    assert_eq!(
        metric(&replica, "sqld_replication_bootstraps_total"),
        0.0,
        "resumed, not re-bootstrapped"
    );
}

#[tokio::test]
async fn a_new_log_on_the_primary_makes_replicas_bootstrap_again() {
    let tmp = tempfile::tempdir().unwrap();
    let pdir = tmp.path().join("primary");
    let (mut primary, replica, r) = primary_and_replica(
        &pdir,
        "create table t(id integer); insert into t values (1)",
    )
    .await;
    eventually_count(&r, "t", 1).await;
    let old_log = log_id(&primary);
    // The primary's log is gone (a restored backup, a replaced volume): it
    // starts a new one, on the addresses the replica knows.
    assert!(primary.terminate().success());
    std::fs::remove_dir_all(pdir.join("replication")).unwrap();
    primary.restart();
    assert_ne!(log_id(&primary), old_log);
    primary
        .connect()
        .await
        .batch_execute("insert into t values (2)")
        .await
        .unwrap();
    eventually_count(&r, "t", 2).await;
    assert!(metric(&replica, "sqld_replication_bootstraps_total") >= 2.0);
}

/// A primary on `pdir` that ran `setup`, a ready replica of it, and a
/// session on the replica.
async fn primary_and_replica(
    pdir: &std::path::Path,
    setup: &str,
) -> (Sqld, Sqld, tokio_postgres::Client) {
    let primary = Sqld::spawn(pdir, &["--dev"]);
    primary.connect().await.batch_execute(setup).await.unwrap();
    let replica = Sqld::replica_of(&primary, &[]);
    replica.wait_ready();
    let session = replica.connect().await;
    (primary, replica, session)
}

fn log_id(primary: &Sqld) -> String {
    let (status, body) = primary.http_get("/v1/replication/info");
    assert_eq!(status, 200, "{body}");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    info["log_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn compaction_keeps_the_log_bounded_and_new_replicas_complete() {
    let primary = Sqld::start_with(&["--dev", "--snapshot-threshold-frames", "20"]);
    let p = primary.connect().await;
    p.batch_execute("create table t(id integer primary key, pad text)")
        .await
        .unwrap();
    for i in 0..200i64 {
        p.execute("insert into t values ($1, $2)", &[&i, &"x".repeat(500)])
            .await
            .unwrap();
    }
    // Compaction runs every few seconds.
    let deadline = Instant::now() + Duration::from_secs(15);
    let info = loop {
        let (_, body) = primary.http_get("/v1/replication/info");
        let info: serde_json::Value = serde_json::from_str(&body).unwrap();
        if info["snapshot_frame_no"].as_u64().unwrap() > 0 {
            break info;
        }
        assert!(Instant::now() < deadline, "no snapshot taken: {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = primary.db_dir.join("replication/frames.log");
    let frames_left = std::fs::metadata(&log).unwrap().len() / 4116;
    assert!(
        frames_left < 200,
        "log was folded ({frames_left} frames left, info {info})"
    );
    let replica = Sqld::replica_of(&primary, &[]);
    replica.wait_ready();
    eventually_count(&replica.connect().await, "t", 200).await;
}

#[tokio::test]
async fn the_replication_token_is_required() {
    let primary = Sqld::start_with(&["--dev", "--replication-token", "s3cret"]);
    assert_eq!(primary.http_get("/v1/replication/info").0, 401);
    let without = Sqld::replica_of(&primary, &[]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(without.http_get("/ready").0, 503);
    let with = Sqld::replica_of(&primary, &["--replication-token", "s3cret"]);
    with.wait_ready();
}

#[tokio::test]
async fn read_your_writes_holds_for_1000_rounds() {
    let primary = Sqld::start();
    let replica = Sqld::replica_of(&primary, &[]);
    replica.wait_ready();
    let r = replica.connect().await;
    r.batch_execute("create table ryw(k integer primary key, v integer)")
        .await
        .unwrap();
    let insert = r.prepare("insert into ryw values ($1, $2)").await.unwrap();
    let select = r.prepare("select v from ryw where k = $1").await.unwrap();
    for k in 0..1000i64 {
        r.execute(&insert, &[&k, &(k * 7)]).await.unwrap();
        let v: i64 = r.query_one(&select, &[&k]).await.unwrap().get(0);
        assert_eq!(v, k * 7, "round {k}");
    }
}

/// Content of every table, as one string per table, for comparison.
async fn dump(c: &tokio_postgres::Client) -> Vec<String> {
    let tables = c
        .query(
            "select name from sqlite_schema where type = 'table' order by name",
            &[],
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    for t in tables {
        let name: String = t.get(0);
        let rows = c
            .simple_query(&format!("select * from {name} order by 1"))
            .await
            .unwrap();
        let text: Vec<String> = rows
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                    (0..r.len())
                        .map(|i| r.get(i).unwrap_or("NULL").to_owned())
                        .collect::<Vec<_>>()
                        .join("|"),
                ),
                _ => None,
            })
            .collect();
        out.push(format!("{name}: {}", text.join(";")));
    }
    out
}

#[tokio::test]
async fn replicas_converge_on_identical_content() {
    let primary = Sqld::start();
    let replica = Sqld::replica_of(&primary, &[]);
    replica.wait_ready();
    let p = primary.connect().await;
    p.batch_execute(
        "create table a(id integer primary key, v text);
         create table b(id integer primary key, n real, blob blob);
         create index a_v on a(v);",
    )
    .await
    .unwrap();
    // A large transaction, updates, deletes, DDL and VACUUM.
    p.batch_execute("begin").await.unwrap();
    for i in 0..2000i64 {
        p.execute(
            "insert into a values ($1, $2)",
            &[&i, &format!("value {i} {}", "x".repeat(200))],
        )
        .await
        .unwrap();
    }
    p.batch_execute("commit").await.unwrap();
    p.batch_execute("update a set v = 'changed' where id % 3 = 0; delete from a where id % 5 = 0")
        .await
        .unwrap();
    p.execute(
        "insert into b values (1, 2.5, $1)",
        &[&vec![0u8, 1, 2, 255]],
    )
    .await
    .unwrap();
    p.batch_execute("alter table b add column extra text default 'd'; drop index a_v")
        .await
        .unwrap();
    p.batch_execute("vacuum").await.unwrap();
    p.batch_execute("insert into b(id, n) values (2, 3.5)")
        .await
        .unwrap();
    let r = replica.connect().await;
    let expected = dump(&p).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if dump(&r).await == expected {
            break;
        }
        assert!(Instant::now() < deadline, "the replica did not converge");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ok: String = r
        .query_one("pragma integrity_check", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ok, "ok");
}

#[tokio::test]
async fn a_stopped_replica_catches_up_after() {
    let primary = Sqld::start();
    let p = primary.connect().await;
    p.batch_execute("create table t(id integer primary key)")
        .await
        .unwrap();
    let replica = Sqld::replica_of(&primary, &[]);
    replica.wait_ready();
    let pid = replica.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    for i in 0..100i64 {
        p.execute("insert into t values ($1)", &[&i]).await.unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap();
    eventually_count(&replica.connect().await, "t", 100).await;
}

#[tokio::test]
async fn kill_9_of_the_primary_under_write_load_loses_no_acknowledged_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let pdir = tmp.path().join("primary");
    let mut primary = Sqld::spawn(&pdir, &["--dev"]);
    primary
        .connect()
        .await
        .batch_execute("create table w(id integer primary key, client integer)")
        .await
        .unwrap();
    let follower = Sqld::replica_of(&primary, &[]);
    follower.wait_ready();
    let log_before = log_id(&primary);
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for client in 0..8i64 {
        let c = primary.connect().await;
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let id = client * 1_000_000 + i;
                match c
                    .execute("insert into w values ($1, $2)", &[&id, &client])
                    .await
                {
                    Ok(_) => acked.lock().unwrap().push(id),
                    Err(_) => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    primary.kill9();
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty());
    primary.restart();
    let p = primary.connect().await;
    let ids: std::collections::HashSet<i64> = p
        .query("select id from w", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let lost: Vec<_> = acked.iter().filter(|id| !ids.contains(id)).collect();
    assert!(lost.is_empty(), "{} acknowledged commits lost", lost.len());
    let integrity: String = p
        .query_one("pragma integrity_check", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(integrity, "ok");
    // The log survived the crash: same id, and the replica that followed
    // the primary through it resumes instead of bootstrapping again.
    assert_eq!(log_id(&primary), log_before);
    p.batch_execute("insert into w values (-1, -1)")
        .await
        .unwrap();
    let f = follower.connect().await;
    eventually_count(&f, "w", ids.len() as i64 + 1).await;
    assert_eq!(dump(&f).await, dump(&p).await);
    assert_eq!(
        metric(&follower, "sqld_replication_bootstraps_total"),
        1.0,
        "the replica resumed, it did not bootstrap again"
    );
    // A replica of the restarted primary converges on the same rows.
    let replica = Sqld::replica_of(&primary, &[]);
    replica.wait_ready();
    eventually_count(&replica.connect().await, "w", ids.len() as i64 + 1).await;
}

#[tokio::test]
async fn sessions_see_the_new_schema_after_a_re_bootstrap() {
    let tmp = tempfile::tempdir().unwrap();
    let pdir = tmp.path().join("primary");
    let (mut primary, replica, r) = primary_and_replica(&pdir, "create table a(x integer)").await;
    // The session parses the schema as it is now (schema cookie 1).
    assert_eq!(count(&r, "a").await, 0);
    // A different database behind the same address: the replica loads its
    // snapshot, and its schema reaches cookie 1 again with other tables.
    assert!(primary.terminate().success());
    std::fs::remove_dir_all(&pdir).unwrap();
    primary.restart();
    primary
        .connect()
        .await
        .batch_execute("create table b(y integer); insert into b values (1)")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while metric(&replica, "sqld_replication_bootstraps_total") < 2.0 {
        assert!(Instant::now() < deadline, "no re-bootstrap");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The replica may have loaded the new primary's snapshot before `b`
    // was created, and follow its creation a moment later: until then the
    // table is missing, which is no failure.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match r.query_one("select count(*) from b", &[]).await {
            Ok(row) if row.get::<_, i64>(0) == 1 => break,
            Ok(_) => {}
            Err(e) => assert_eq!(e.code(), Some(&SqlState::UNDEFINED_TABLE), "{e}"),
        }
        assert!(Instant::now() < deadline, "the session never saw table b");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let err = r
        .query_one("select count(*) from a", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
    // The reopened connection has the session's own functions too.
    let locked: i64 = r
        .query_one("select pg_try_advisory_lock(7)", &[])
        .await
        .expect("the session's functions after the reopen")
        .get(0);
    assert_eq!(locked, 1);
}

#[tokio::test]
async fn large_parameters_are_forwarded_intact() {
    let primary = Sqld::start();
    let replica = Sqld::replica_of(&primary, &[]);
    replica.wait_ready();
    let r = replica.connect().await;
    r.batch_execute("create table big(id integer primary key, b blob, t text)")
        .await
        .unwrap();
    // Every byte value, and text that JSON has to escape throughout.
    let blob: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    let text: String = "\"\\\u{1}é\n".repeat(200_000);
    r.execute("insert into big values (1, $1, $2)", &[&blob, &text])
        .await
        .unwrap();
    let p = primary.connect().await;
    for (side, c) in [("primary", &p), ("replica", &r)] {
        let row = c
            .query_one("select b, t from big where id = 1", &[])
            .await
            .unwrap();
        assert!(row.get::<_, Vec<u8>>(0) == blob, "blob on the {side}");
        assert!(row.get::<_, String>(1) == text, "text on the {side}");
    }
}

#[tokio::test]
async fn a_replica_session_writes_again_once_a_denied_trigger_is_dropped() {
    let primary = Sqld::start();
    let p = primary.connect().await;
    p.batch_execute(
        "create table t(a integer);
         create trigger t_ins after insert on t
           begin select load_extension('/tmp/evil.so'); end;",
    )
    .await
    .unwrap();
    let replica = Sqld::replica_of(&primary, &[]);
    replica.wait_ready();
    let r = replica.connect().await;
    let err = r
        .batch_execute("insert into t values (1)")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    p.batch_execute("drop trigger t_ins").await.unwrap();
    // The drop reaches the replica asynchronously; the insert then works
    // on the same session.
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = r.batch_execute("insert into t values (1)").await {
        assert_eq!(e.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
        assert!(Instant::now() < deadline, "still denied: {e}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(count(&p, "t").await, 1);
}

/// Writers at full speed on the primary while readers on a replica repeat
/// one prepared query: every read succeeds, no reader ever sees the table
/// shrink (reads are monotonic), and the replica ends identical and intact.
/// Applying a batch used to stop at a transient SQLITE_BUSY and then inject
/// the transactions it had already applied a second time, rewinding pages
/// under the readers (fewer rows, or "database disk image is malformed").
#[tokio::test]
async fn replica_readers_stay_consistent_under_sustained_writes() {
    const WRITERS: usize = 4;
    const READERS: usize = 8;
    let run_for = Duration::from_secs(8);
    let primary = Sqld::start();
    let replica = Sqld::replica_of(&primary, &[]);
    replica.wait_ready();
    let p = primary.connect().await;
    p.batch_execute("create table t(id integer primary key, v text)")
        .await
        .unwrap();
    let r = replica.connect().await;
    table_reaches(&r, "t").await;
    let stop = Instant::now() + run_for;
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let w = primary.connect().await;
        tasks.push(tokio::spawn(async move {
            let insert = w.prepare("insert into t(v) values ($1)").await.unwrap();
            let v = "x".repeat(100);
            while Instant::now() < stop {
                w.execute(&insert, &[&v]).await.unwrap();
            }
            Ok(0)
        }));
    }
    for _ in 0..READERS {
        let r = replica.connect().await;
        tasks.push(tokio::spawn(async move {
            let select = r.prepare("select max(id), count(*) from t").await.unwrap();
            let (mut reads, mut seen) = (0u64, 0i64);
            while Instant::now() < stop {
                let row = r.query_one(&select, &[]).await.map_err(|e| e.to_string())?;
                let count: i64 = row.get(1);
                if count < seen {
                    return Err(format!("read {count} rows after {seen}"));
                }
                seen = count;
                reads += 1;
            }
            Ok(reads)
        }));
    }
    // And sessions coming and going, as clients open and close them.
    for _ in 0..2 {
        let replica_conn = replica.conn_str();
        tasks.push(tokio::spawn(async move {
            let mut reads = 0;
            while Instant::now() < stop {
                let (c, connection) = tokio_postgres::connect(&replica_conn, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                c.query_one("select count(*) from t", &[])
                    .await
                    .map_err(|e| e.to_string())?;
                reads += 1;
            }
            Ok(reads)
        }));
    }
    let mut reads = 0;
    for task in tasks {
        reads += task.await.unwrap().expect("a replica read failed");
    }
    assert!(reads > 0);
    let expected = dump(&p).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while dump(&r).await != expected {
        assert!(Instant::now() < deadline, "the replica did not converge");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ok: String = r
        .query_one("pragma integrity_check", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ok, "ok");
}

/// A primary and a replica sharing table `t`, with a primary session that
/// holds the write lock (an open transaction that wrote) until told.
async fn primary_busy_writing() -> (Sqld, Sqld, tokio_postgres::Client) {
    let primary = Sqld::start_with(&["--dev", "--busy-timeout", "60s"]);
    let replica = Sqld::replica_of(&primary, &[]);
    replica.wait_ready();
    let p = primary.connect().await;
    p.batch_execute("create table t(id integer primary key, v text)")
        .await
        .unwrap();
    let r = replica.connect().await;
    table_reaches(&r, "t").await;
    p.batch_execute("begin; insert into t (v) values ('holder')")
        .await
        .unwrap();
    (primary, replica, p)
}

/// A forwarded write keeps the replica session's statement timeout on both
/// sides: the client gets 57014 instead of waiting out the primary's busy
/// timeout, and the primary, which stopped the statement at the same
/// deadline, never applies it, even once the lock it waited for is free.
#[tokio::test]
async fn a_forwarded_write_past_its_statement_timeout_is_not_applied() {
    let (primary, replica, holder) = primary_busy_writing().await;
    let r = replica.connect().await;
    r.batch_execute("set statement_timeout = 300")
        .await
        .unwrap();
    let err = r
        .batch_execute("insert into t (v) values ('late')")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    holder.batch_execute("commit").await.unwrap();
    r.batch_execute("set statement_timeout = 0").await.unwrap();
    never_applied(&primary, &r, "late").await;
    assert_eq!(count(&primary.connect().await, "t").await, 2);
}

/// A CancelRequest reaches a statement waiting for the primary's answer:
/// the client gets 57014 at once and its session goes on.
#[tokio::test]
async fn a_forwarded_write_can_be_canceled_while_the_primary_is_busy() {
    let (primary, replica, holder) = primary_busy_writing().await;
    let r = replica.connect().await;
    let cancel = r.cancel_token();
    let canceler = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel_query(tokio_postgres::NoTls).await.unwrap();
    });
    let started = Instant::now();
    let err = r
        .batch_execute("insert into t (v) values ('canceled')")
        .await
        .unwrap_err();
    canceler.await.unwrap();
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the cancel waited for the primary's lock"
    );
    // The primary canceled it too: once the lock it queued for is free,
    // it is not applied.
    holder.batch_execute("rollback").await.unwrap();
    never_applied(&primary, &r, "canceled").await;
    assert_eq!(count(&r, "t").await, 1);
}

/// Once the primary's lock is free and a later write through the replica
/// went through, the primary holds no row `v = value`.
async fn never_applied(primary: &Sqld, r: &tokio_postgres::Client, value: &str) {
    r.batch_execute("insert into t (v) values ('after')")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let p = primary.connect().await;
    let n: i64 = p
        .query_one("select count(*) from t where v = $1", &[&value])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "the '{value}' write was applied");
}
