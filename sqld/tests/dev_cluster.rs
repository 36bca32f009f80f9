//! `sqld dev-cluster`: one command starts a primary and replicas on
//! consecutive ports; writes on the primary reach every replica, and
//! SIGTERM stops them all.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const REPLICAS: u16 = 2;

/// Stops the cluster however the test ends: SIGTERM lets it stop its
/// members (which would otherwise outlive the test and hold its output).
struct StopOnDrop(std::process::Child);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill").arg(self.0.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A base port whose next `n` ports are all free right now.
fn free_run(n: u16) -> u16 {
    for _ in 0..100 {
        let base = common::free_port();
        if base.checked_add(n).is_none() {
            continue;
        }
        if (base..base + n).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    panic!("no run of {n} free ports");
}

async fn connect(port: u16) -> tokio_postgres::Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=sqld dbname=sqld"),
            tokio_postgres::NoTls,
        )
        .await
        {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                return client;
            }
            Err(e) if Instant::now() > deadline => panic!("port {port}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A running `sqld dev-cluster` with `extra` flags: the process, its
/// output lines, and the first pg and HTTP ports.
fn start_cluster(
    db_path: &std::path::Path,
    extra: &[&str],
) -> (StopOnDrop, mpsc::Receiver<String>, u16, u16) {
    let members = REPLICAS + 1;
    let pg = free_run(members);
    let http = free_run(members);
    let mut cluster = StopOnDrop(
        Command::new(env!("CARGO_BIN_EXE_sqld"))
            .args(["dev-cluster", "--replicas", &REPLICAS.to_string()])
            .args(["--db-path", db_path.to_str().unwrap()])
            .args([
                "--pg-port",
                &pg.to_string(),
                "--http-port",
                &http.to_string(),
            ])
            .args(extra)
            .env("SQLD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    // Lines are read on a thread: the members inherit stdout, so the pipe
    // only ends when the last of them does.
    let (lines_tx, lines) = mpsc::channel();
    let stdout = cluster.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    (cluster, lines, pg, http)
}

#[tokio::test]
async fn dev_cluster_starts_a_primary_and_replicas_and_stops_them() {
    let tmp = tempfile::tempdir().unwrap();
    let members = REPLICAS + 1;
    let (mut cluster, lines, pg, http) = start_cluster(tmp.path(), &[]);
    let next_line = || lines.recv_timeout(Duration::from_secs(20)).expect("output");
    let printed: Vec<String> = (0..members).map(|_| next_line()).collect();
    assert!(printed[0].starts_with("primary"), "{printed:?}");
    for (i, line) in printed.iter().enumerate() {
        assert!(line.contains(&format!("-p {}", pg + i as u16)), "{line}");
    }

    let primary = connect(pg).await;
    primary
        .batch_execute("create table t(x integer); insert into t values (1), (2), (3)")
        .await
        .unwrap();
    let mut replicas = Vec::new();
    for i in 1..=REPLICAS {
        let replica = connect(pg + i).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let n: Option<i64> = match replica.query_one("select count(*) from t", &[]).await {
                Ok(row) => Some(row.get(0)),
                Err(_) => None,
            };
            if n == Some(3) {
                break;
            }
            assert!(Instant::now() < deadline, "replica {i} has {n:?} rows");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        replicas.push(replica);
    }
    // Writes through a replica go to the primary.
    for (i, replica) in replicas.iter().enumerate() {
        replica
            .execute("insert into t values ($1)", &[&(10 + i as i64)])
            .await
            .unwrap();
    }
    let n: i64 = primary
        .query_one("select count(*) from t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3 + REPLICAS as i64);
    drop(primary);

    Command::new("kill")
        .arg(cluster.0.id().to_string())
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = cluster.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "dev-cluster did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let stopped: Vec<String> = (0..members).map(|_| next_line()).collect();
    assert_eq!(stopped.last().unwrap(), "stopped primary", "{stopped:?}");
    // Every member is gone: its port can be bound again.
    for port in (pg..pg + members).chain(http..http + members) {
        assert!(
            TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} still in use"
        );
    }
}

#[tokio::test]
async fn dev_cluster_failover_promotes_a_replica_when_the_primary_dies() {
    let tmp = tempfile::tempdir().unwrap();
    let (_cluster, lines, pg, _http) = start_cluster(tmp.path(), &["--failover"]);
    let next_line = || lines.recv_timeout(Duration::from_secs(30)).expect("output");
    let printed: Vec<String> = (0..=REPLICAS).map(|_| next_line()).collect();
    let primary_pid = printed[0].rsplit(' ').next().unwrap().to_owned();
    let primary = connect(pg).await;
    primary
        .batch_execute("create table t(x integer primary key); insert into t values (1), (2)")
        .await
        .unwrap();
    for i in 1..=REPLICAS {
        let replica = connect(pg + i).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while replica
            .query_one("select count(*) from t", &[])
            .await
            .map(|r| r.get::<_, i64>(0))
            .ok()
            != Some(2)
        {
            assert!(Instant::now() < deadline, "replica {i} did not catch up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    Command::new("kill")
        .args(["-9", &primary_pid])
        .status()
        .unwrap();
    let killed = Instant::now();
    // The first write acknowledged anywhere in the cluster after the kill.
    let mut next = 3i64;
    let written_on = 'written: loop {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no write taken after the kill"
        );
        for port in pg + 1..=pg + REPLICAS {
            if let Ok((c, conn)) = tokio_postgres::connect(
                &format!("host=127.0.0.1 port={port} user=sqld dbname=sqld connect_timeout=1"),
                tokio_postgres::NoTls,
            )
            .await
            {
                tokio::spawn(conn);
                if c.execute("insert into t values ($1)", &[&next])
                    .await
                    .is_ok()
                {
                    break 'written port;
                }
                next += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let unavailable = killed.elapsed();
    eprintln!("dev-cluster failover: kill -9 to the first acknowledged write: {unavailable:?} (on port {written_on})");
    // The supervisor's report (members log to the same output).
    let report = |prefix: &str| loop {
        let line = next_line();
        if line.starts_with(prefix) {
            return line;
        }
    };
    report("primary died: promoted replica-");
    report("primary restarted as a replica");
    // The old primary's directory serves again, as a replica with every row.
    let old = connect(pg).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = old
            .query_one("select count(*) from t", &[])
            .await
            .map(|r| r.get::<_, i64>(0))
            .ok();
        if n == Some(3) {
            break;
        }
        assert!(Instant::now() < deadline, "the old primary has {n:?} rows");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
