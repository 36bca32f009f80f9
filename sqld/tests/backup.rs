//! Continuous backup and point-in-time restore against the real binary:
//! a primary archiving to a real S3 API on loopback (moto) and to a
//! directory, restores to the latest point and to earlier frames and
//! times compared with what the writer saw, a store that goes away under
//! load, a corrupted segment, retention, and `kill -9` mid-upload.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{eventually, free_port, metric, Sqld};

/// Rows each transaction inserts: a restore holding a count that is not
/// a multiple of it holds half a transaction.
const TXN_ROWS: i64 = 5;
/// What the tests compare: row count and a checksum of the content.
const STATE_SQL: &str = "select count(*), coalesce(sum(id * 7 + length(v)), 0) from t";

/// A moto S3 server on loopback, with one bucket; killed when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start(bucket: &str) -> Moto {
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto is installed (scripts/setup.sh: pip install \"moto[server]\")");
        let moto = Moto { child, port };
        eventually("moto listening", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        moto.request(&format!("PUT /{bucket} HTTP/1.1"));
        moto
    }

    fn request(&self, line: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{line}\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{line}: {out}");
        out
    }

    /// The AWS variables that point a client at it.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a test's backup goes, and the environment reaching it needs.
struct Store {
    url: String,
    env: Vec<(&'static str, String)>,
    /// The directory of a file:// store.
    dir: Option<PathBuf>,
}

impl Store {
    fn file(dir: &Path) -> Store {
        Store {
            url: format!("file://{}", dir.display()),
            env: Vec::new(),
            dir: Some(dir.to_owned()),
        }
    }

    fn s3(moto: &Moto, bucket: &str, prefix: &str) -> Store {
        Store {
            url: format!("s3://{bucket}/{prefix}"),
            env: moto.env(),
            dir: None,
        }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    /// A primary archiving here, on `db_dir`.
    fn primary(&self, db_dir: &Path, extra: &[&str]) -> Sqld {
        let mut args = vec!["--dev", "--backup-url", &self.url];
        if !extra.contains(&"--backup-interval") {
            args.extend(["--backup-interval", "100ms"]);
        }
        args.extend_from_slice(extra);
        Sqld::spawn_env(db_dir, &args, &self.env())
    }

    /// Runs `sqld <args>` against this store.
    fn sqld(&self, args: &[&str]) -> std::process::Output {
        common::run_bounded(
            {
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_sqld"));
                cmd.args(args).env("SQLD_LOG", "warn");
                for (k, v) in &self.env {
                    cmd.env(k, v);
                }
                cmd
            },
            Duration::from_secs(60),
            "built by cargo",
        )
    }

    /// Restores into a new directory under `tmp`; the command's output.
    fn restore(&self, tmp: &Path, point: &[&str]) -> (PathBuf, std::process::Output) {
        let dir = tmp.join(format!("restore-{}", uuid()));
        let dir_s = dir.display().to_string();
        let mut args = vec!["restore", "--from", &self.url, "--db-path", &dir_s];
        args.extend_from_slice(point);
        let out = self.sqld(&args);
        (dir, out)
    }

    /// Restores and returns (count, checksum) of the result.
    fn restored_state(&self, tmp: &Path, point: &[&str]) -> (i64, i64) {
        let (dir, out) = self.restore(tmp, point);
        assert!(
            out.status.success(),
            "restore {point:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        state_of_file(&dir.join("data.db"))
    }

    /// The object names of a file:// store, sorted.
    fn objects(&self) -> Vec<String> {
        let mut names = Vec::new();
        let dir = self.dir.as_ref().expect("a file store");
        for log in std::fs::read_dir(dir).unwrap() {
            let log = log.unwrap();
            if !log.file_type().unwrap().is_dir() {
                continue;
            }
            for f in std::fs::read_dir(log.path()).unwrap() {
                let f = f.unwrap().file_name().into_string().unwrap();
                if !f.starts_with('.') && !f.contains("#") {
                    names.push(format!("{}/{f}", log.file_name().into_string().unwrap()));
                }
            }
        }
        names.sort();
        names
    }
}

fn uuid() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn state_of_file(db: &Path) -> (i64, i64) {
    let conn = libsql_sys::rusqlite::Connection::open(db).unwrap();
    let check: String = conn
        .query_row("pragma integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    conn.query_row(STATE_SQL, [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
}

async fn state(c: &tokio_postgres::Client) -> (i64, i64) {
    let row = c.query_one(STATE_SQL, &[]).await.unwrap();
    (row.get(0), row.get(1))
}

/// One transaction of `TXN_ROWS` rows.
async fn write_txn(c: &tokio_postgres::Client, i: i64) {
    let values: Vec<String> = (0..TXN_ROWS)
        .map(|j| {
            format!(
                "('{}')",
                "x".repeat(((i * 31 + j * 17) % 300 + 50) as usize)
            )
        })
        .collect();
    c.batch_execute(&format!("insert into t(v) values {}", values.join(",")))
        .await
        .unwrap();
}

/// A point the writer saw: the newest durable frame, a time just after
/// it committed, and the state then.
#[derive(Debug, Clone)]
struct Seen {
    frame_no: u64,
    time: String,
    state: (i64, i64),
}

async fn see(s: &Sqld, c: &tokio_postgres::Client) -> Seen {
    // The commit's time is noted as it becomes durable: let that settle
    // before taking the time, and keep the next commit after it.
    tokio::time::sleep(Duration::from_millis(60)).await;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let seen = Seen {
        frame_no: metric(s, "sqld_replication_frame_no") as u64,
        time: now,
        state: state(c).await,
    };
    tokio::time::sleep(Duration::from_millis(60)).await;
    seen
}

fn wait_archived(s: &Sqld, within: Duration) {
    let head = metric(s, "sqld_replication_frame_no");
    eventually("archive caught up", within, || {
        metric(s, "sqld_backup_archived_frame_no") >= head
    });
}

/// Writes under load with points noted along the way, then restores to
/// the latest point and to each noted frame and time.
async fn archive_and_restore_everywhere(store: Store, tmp: &Path) {
    let mut primary = store.primary(
        &tmp.join("primary"),
        &[
            "--snapshot-threshold-frames",
            "150",
            "--backup-generation-frames",
            "200",
        ],
    );
    let c = primary.connect().await;
    c.batch_execute("create table t(id integer primary key, v text)")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut i = 0;
    for _ in 0..4 {
        let until = Instant::now() + Duration::from_millis(700);
        while Instant::now() < until {
            write_txn(&c, i).await;
            i += 1;
        }
        seen.push(see(&primary, &c).await);
    }
    wait_archived(&primary, Duration::from_secs(15));
    let latest = state(&c).await;
    assert!(metric(&primary, "sqld_backup_snapshots_uploaded_total") >= 1.0);

    assert_eq!(store.restored_state(tmp, &[]), latest);
    for point in &seen {
        let frame = point.frame_no.to_string();
        assert_eq!(
            store.restored_state(tmp, &["--to-frame", &frame]),
            point.state,
            "{point:?}"
        );
        assert_eq!(
            store.restored_state(tmp, &["--to-time", &point.time]),
            point.state,
            "{point:?}"
        );
    }
    // A frame inside a transaction restores the one before it, whole.
    let (count, _) =
        store.restored_state(tmp, &["--to-frame", &(seen[1].frame_no + 2).to_string()]);
    assert_eq!(count % TXN_ROWS, 0);
    assert!(count >= seen[1].state.0);

    // The restored database starts as a new primary, archiving to the same
    // store under a new log id.
    primary.terminate();
    let (dir, out) = store.restore(tmp, &["--to-frame", &seen[2].frame_no.to_string()]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains(&format!("frame {}", seen[2].frame_no)),
        "{stdout}"
    );
    let restored = store.primary(&dir, &[]);
    let c = restored.connect().await;
    assert_eq!(state(&c).await, seen[2].state);
    write_txn(&c, 0).await;
    wait_archived(&restored, Duration::from_secs(15));
    let list = store.sqld(&["backup", "list", &store.url]);
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert_eq!(list.matches("log ").count(), 2, "{list}");
    assert_eq!(store.restored_state(tmp, &[]), state(&c).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_archive_restores_latest_and_earlier_points() {
    let tmp = tempfile::tempdir().unwrap();
    let moto = Moto::start("backups");
    archive_and_restore_everywhere(Store::s3(&moto, "backups", "db1"), tmp.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_archive_restores_latest_and_earlier_points() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::file(&tmp.path().join("store"));
    archive_and_restore_everywhere(store, tmp.path()).await;
}

/// The segments of a file store, as (first, last) frames: they must
/// chain without gap or overlap from the first snapshot on.
fn assert_segments_chain(store: &Store) -> u64 {
    let mut segments: Vec<(u64, u64)> = store
        .objects()
        .iter()
        .filter_map(|n| n.split_once("/segment-"))
        .map(|(_, rest)| {
            let mut parts = rest.split('-');
            let first = parts.next().unwrap().parse().unwrap();
            let last = parts.next().unwrap().parse().unwrap();
            (first, last)
        })
        .collect();
    segments.sort();
    assert!(!segments.is_empty());
    assert_eq!(segments[0].0, 1, "{segments:?}");
    for pair in segments.windows(2) {
        assert_eq!(pair[1].0, pair[0].1 + 1, "gap or overlap: {segments:?}");
    }
    segments.last().unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_away_under_load_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store_dir = tmp.path().join("store");
    let store = Store::file(&store_dir);
    // Compaction runs while the store is away: it must keep the frames.
    let primary = store.primary(
        &tmp.path().join("primary"),
        &["--snapshot-threshold-frames", "100"],
    );
    let c = primary.connect().await;
    c.batch_execute("create table t(id integer primary key, v text)")
        .await
        .unwrap();
    for i in 0..50 {
        write_txn(&c, i).await;
    }
    wait_archived(&primary, Duration::from_secs(10));
    // The store goes away: its directory replaced by a file.
    let away = tmp.path().join("store-away");
    std::fs::rename(&store_dir, &away).unwrap();
    std::fs::write(&store_dir, b"not a directory").unwrap();
    let before = state(&c).await.0;
    let until = Instant::now() + Duration::from_secs(6);
    let started = Instant::now();
    let mut commits = 0;
    while Instant::now() < until {
        write_txn(&c, commits).await;
        commits += 1;
    }
    let rate = commits as f64 / started.elapsed().as_secs_f64();
    assert!(state(&c).await.0 > before);
    assert!(metric(&primary, "sqld_backup_upload_errors_total") > 0.0);
    assert!(metric(&primary, "sqld_backup_lag_frames") > 0.0);
    assert!(metric(&primary, "sqld_backup_lag_seconds") > 1.0);
    assert!(
        rate > 20.0,
        "commits slowed to {rate:.0}/s while the store was away"
    );
    // It comes back: everything arrives, in one unbroken chain.
    std::fs::remove_file(&store_dir).unwrap();
    std::fs::rename(&away, &store_dir).unwrap();
    wait_archived(&primary, Duration::from_secs(20));
    assert_eq!(
        assert_segments_chain(&store),
        metric(&primary, "sqld_replication_frame_no") as u64
    );
    assert_eq!(
        metric(&primary, "sqld_backup_unarchived_frames_dropped_total"),
        0.0
    );
    assert_eq!(store.restored_state(tmp.path(), &[]), state(&c).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_store_that_stops_answering_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let moto = Moto::start("paused");
    let store = Store::s3(&moto, "paused", "p");
    let primary = store.primary(&tmp.path().join("primary"), &[]);
    let c = primary.connect().await;
    c.batch_execute("create table t(id integer primary key, v text)")
        .await
        .unwrap();
    wait_archived(&primary, Duration::from_secs(10));
    moto.signal("-STOP");
    for i in 0..200 {
        write_txn(&c, i).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(metric(&primary, "sqld_backup_lag_frames") > 0.0);
    moto.signal("-CONT");
    wait_archived(&primary, Duration::from_secs(20));
    assert_eq!(store.restored_state(tmp.path(), &[]), state(&c).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_segment_is_named_on_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::file(&tmp.path().join("store"));
    let primary = store.primary(&tmp.path().join("primary"), &[]);
    let c = primary.connect().await;
    c.batch_execute("create table t(id integer primary key, v text)")
        .await
        .unwrap();
    for i in 0..20 {
        write_txn(&c, i).await;
        if i % 5 == 0 {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
    wait_archived(&primary, Duration::from_secs(10));
    let segments: Vec<String> = store
        .objects()
        .into_iter()
        .filter(|n| n.contains("/segment-"))
        .collect();
    assert!(segments.len() >= 2, "{segments:?}");
    let victim = &segments[segments.len() / 2];
    let path = store.dir.as_ref().unwrap().join(victim);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();

    let (dir, out) = store.restore(tmp.path(), &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(victim.as_str()) && stderr.contains("corrupt"),
        "{stderr}"
    );
    assert!(
        !dir.join("data.db").exists(),
        "a failed restore leaves no database"
    );
    let verify = store.sqld(&["backup", "verify", &store.url]);
    assert!(!verify.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_exactly_the_generations_the_window_needs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::file(&tmp.path().join("store"));
    let primary = store.primary(
        &tmp.path().join("primary"),
        &[
            "--snapshot-threshold-frames",
            "60",
            "--backup-generation-frames",
            "60",
            "--backup-retention",
            "2s",
        ],
    );
    let c = primary.connect().await;
    c.batch_execute("create table t(id integer primary key, v text)")
        .await
        .unwrap();
    let started = Instant::now();
    let mut i = 0;
    // Compaction checks every 5 s: writing for 12 s makes a few
    // generations, the early ones outside the window.
    while started.elapsed() < Duration::from_secs(12) {
        write_txn(&c, i).await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wait_archived(&primary, Duration::from_secs(10));
    let uploaded = metric(&primary, "sqld_backup_snapshots_uploaded_total");
    let deleted = metric(&primary, "sqld_backup_objects_deleted_total");
    assert!(uploaded >= 3.0, "{uploaded}");
    assert!(deleted >= 1.0, "{deleted}");
    let objects = store.objects();
    let snapshots: Vec<(u64, u64)> = objects
        .iter()
        .filter_map(|n| n.split_once("/snapshot-"))
        .map(|(_, rest)| {
            let rest = rest.trim_end_matches(".db.zst");
            let (frame, time) = rest.split_once('-').unwrap();
            (frame.parse().unwrap(), time.parse().unwrap())
        })
        .collect();
    assert!((snapshots.len() as f64) < uploaded, "{objects:?}");
    // What is left starts at the oldest kept snapshot and is unbroken; no
    // segment wholly before it survived.
    let (oldest, oldest_time) = snapshots[0];
    for seg in objects.iter().filter_map(|n| n.split_once("/segment-")) {
        let mut parts = seg.1.split('-');
        let _first: u64 = parts.next().unwrap().parse().unwrap();
        let last: u64 = parts.next().unwrap().parse().unwrap();
        assert!(
            last > oldest,
            "segment {seg:?} ends before snapshot {oldest}"
        );
    }
    // The window's start is still restorable; before the oldest kept
    // snapshot is not.
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let at = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let (count, _) = store.restored_state(tmp.path(), &["--to-time", &at(now_ms - 2000)]);
    assert_eq!(count % TXN_ROWS, 0);
    let (_, out) = store.restore(tmp.path(), &["--to-time", &at(oldest_time as i64 - 1)]);
    assert!(!out.status.success());
    assert_eq!(store.restored_state(tmp.path(), &[]), state(&c).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_upload_resumes_without_gaps_or_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::file(&tmp.path().join("store"));
    let mut primary = store.primary(&tmp.path().join("primary"), &["--backup-interval", "20ms"]);
    let c = primary.connect().await;
    c.batch_execute("create table t(id integer primary key, v text)")
        .await
        .unwrap();
    for round in 0..3 {
        let c = primary.connect().await;
        let until = Instant::now() + Duration::from_millis(400 + 130 * round);
        let mut i = 0;
        while Instant::now() < until {
            write_txn(&c, i).await;
            i += 1;
        }
        primary.kill9();
        primary.restart();
    }
    let c = primary.connect().await;
    for i in 0..10 {
        write_txn(&c, i).await;
    }
    wait_archived(&primary, Duration::from_secs(15));
    let logs: std::collections::BTreeSet<_> = store
        .objects()
        .iter()
        .map(|n| n.split_once('/').unwrap().0.to_owned())
        .collect();
    assert_eq!(logs.len(), 1, "a recovered primary keeps its log id");
    assert_eq!(
        assert_segments_chain(&store),
        metric(&primary, "sqld_replication_frame_no") as u64
    );
    assert_eq!(store.restored_state(tmp.path(), &[]), state(&c).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_replica_archives_its_epoch_apart_and_restore_takes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::file(&tmp.path().join("store"));
    let mut primary = store.primary(&tmp.path().join("primary"), &[]);
    let c = primary.connect().await;
    c.batch_execute("create table t(id integer primary key, v text)")
        .await
        .unwrap();
    for i in 0..3 {
        write_txn(&c, i).await;
    }
    wait_archived(&primary, Duration::from_secs(15));
    let replica = Sqld::replica_on(
        &tmp.path().join("replica"),
        &primary,
        &["--backup-url", &store.url, "--backup-interval", "100ms"],
    );
    let before = state(&c).await;
    eventually("the replica has every row", Duration::from_secs(15), || {
        let rt = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| {
            rt.block_on(async {
                let Ok((rc, conn)) =
                    tokio_postgres::connect(&replica.conn_str(), tokio_postgres::NoTls).await
                else {
                    return false;
                };
                tokio::spawn(conn);
                rc.query_one(STATE_SQL, &[])
                    .await
                    .is_ok_and(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)) == before)
            })
        })
    });
    primary.kill9();
    common::sqld_command(&["promote", "--url", &replica.http_url(), "--timeout", "30s"]);
    let rc = replica.connect().await;
    for i in 3..5 {
        write_txn(&rc, i).await;
    }
    wait_archived(&replica, Duration::from_secs(15));
    let epoch_two: Vec<String> = store
        .objects()
        .into_iter()
        .filter(|o| o.contains(".epoch-2/"))
        .collect();
    assert!(
        epoch_two.iter().any(|o| o.contains("/snapshot-")),
        "the new epoch starts with a snapshot: {epoch_two:?}"
    );
    // The newest point is the promoted primary's.
    assert_eq!(store.restored_state(tmp.path(), &[]), state(&rc).await);
}

/// A replica of `primary` on a new directory under `tmp`, bootstrapping
/// from `store`; ready once caught up.
fn replica_from(store: &Store, primary: &Sqld, tmp: &Path) -> Sqld {
    let url = primary.http_url();
    let replica = Sqld::spawn_env(
        &tmp.join(format!("replica-{}", uuid())),
        &[
            "--dev",
            "--primary-url",
            &url,
            "--max-replica-lag-frames",
            "0",
            "--bootstrap-from-backup",
            &store.url,
        ],
        &store.env(),
    );
    replica.wait_ready();
    replica
}

/// The replica's bootstrap metrics, to say why a test failed.
fn bootstrap_metrics(replica: &Sqld) -> String {
    let (_, body) = replica.http_get("/metrics");
    body.lines()
        .filter(|l| l.contains("bootstrap") && !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The replica reads what the primary holds, and a write forwarded through
/// it reaches the primary and comes back.
async fn assert_follows(primary_c: &tokio_postgres::Client, replica: &Sqld, i: i64) {
    let rc = replica.connect().await;
    assert_eq!(state(&rc).await, state(primary_c).await);
    write_txn(primary_c, i).await;
    write_txn(&rc, i + 1).await;
    let expected = state(primary_c).await;
    assert_eq!(expected.0 % TXN_ROWS, 0);
    for _ in 0..500 {
        if state(&rc).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the replica never caught up with {expected:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_bootstraps_from_the_store_and_follows_the_primary() {
    let tmp = tempfile::tempdir().unwrap();
    let moto = Moto::start("backups");
    let store = Store::s3(&moto, "backups", "seed");
    let primary = store.primary(&tmp.path().join("primary"), &[]);
    let c = primary.connect().await;
    c.batch_execute("create table t(id integer primary key, v text)")
        .await
        .unwrap();
    for i in 0..40 {
        write_txn(&c, i).await;
    }
    wait_archived(&primary, Duration::from_secs(15));
    // Frames the store may not hold yet: the primary serves them.
    for i in 40..45 {
        write_txn(&c, i).await;
    }
    let replica = replica_from(&store, &primary, tmp.path());
    assert_eq!(
        metric(&replica, "sqld_replication_backup_bootstraps_total"),
        1.0,
        "{}",
        bootstrap_metrics(&replica)
    );
    assert_eq!(metric(&replica, "sqld_replication_bootstraps_total"), 0.0);
    assert_eq!(
        metric(&primary, "sqld_replication_snapshots_served_total"),
        0.0,
        "the primary served no snapshot"
    );
    assert_follows(&c, &replica, 100).await;
    assert_eq!(
        metric(&primary, "sqld_replication_snapshots_served_total"),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_store_does_not_continue_the_primary_bootstraps_from_it() {
    let tmp = tempfile::tempdir().unwrap();
    let moto = Moto::start("backups");
    // Another primary's backup: another log id.
    let other_store = Store::s3(&moto, "backups", "other");
    let other = other_store.primary(&tmp.path().join("other"), &[]);
    let oc = other.connect().await;
    oc.batch_execute("create table t(id integer primary key, v text)")
        .await
        .unwrap();
    write_txn(&oc, 0).await;
    wait_archived(&other, Duration::from_secs(15));

    let primary = Sqld::spawn(&tmp.path().join("primary"), &["--dev"]);
    let c = primary.connect().await;
    c.batch_execute("create table t(id integer primary key, v text)")
        .await
        .unwrap();
    for i in 0..10 {
        write_txn(&c, i).await;
    }
    let unreachable = Store {
        url: "s3://backups/seed".into(),
        env: {
            let mut env = moto.env();
            env[0].1 = format!("http://127.0.0.1:{}", free_port());
            env
        },
        dir: None,
    };
    let cases = [
        (Store::s3(&moto, "backups", "empty"), "no_backup"),
        (other_store, "no_backup"),
        (unreachable, "unreachable"),
    ];
    for (served, (store, reason)) in (1..).zip(cases) {
        let replica = replica_from(&store, &primary, tmp.path());
        let fallbacks =
            format!("sqld_replication_backup_bootstrap_fallbacks_total{{reason=\"{reason}\"}}");
        assert_eq!(
            metric(&replica, &fallbacks),
            1.0,
            "{}: {}",
            store.url,
            bootstrap_metrics(&replica)
        );
        assert_eq!(
            metric(&replica, "sqld_replication_backup_bootstraps_total"),
            0.0
        );
        assert_eq!(metric(&replica, "sqld_replication_bootstraps_total"), 1.0);
        assert_eq!(
            metric(&primary, "sqld_replication_snapshots_served_total"),
            served as f64
        );
        assert_follows(&c, &replica, 100 + 10 * served).await;
    }
}

#[test]
fn an_azure_url_opens_a_store_that_is_asked_over_http() {
    // A loopback port nothing listens on stands for the service: the
    // command fails reaching it, having accepted the URL.
    let store = Store {
        url: "az://backups/db1".into(),
        env: vec![
            ("AZURE_STORAGE_ACCOUNT_NAME", "devstoreaccount1".into()),
            ("AZURE_STORAGE_ACCOUNT_KEY", "a2V5".into()),
            (
                "AZURE_STORAGE_ENDPOINT",
                format!("http://127.0.0.1:{}", free_port()),
            ),
            ("AZURE_ALLOW_HTTP", "true".into()),
        ],
        dir: None,
    };
    let out = store.sqld(&["backup", "list", &store.url]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("MicrosoftAzure"), "{stderr}");
    assert!(stderr.contains("/backups?restype=container"), "{stderr}");
}
