//! The real `pgbench` (Debian `postgresql-client`) against a started sqld,
//! in each query mode (`simple`, `extended`, `prepared`) with one and four
//! clients: a point read, a point update, and a TPC-B-like transaction.
//! Afterwards the balances must add up: every committed delta is in the
//! accounts and, for TPC-B, in the history table too.
//!
//! Run with `--nocapture` to see the tps figures.
//!
//! pgbench must be installed; a missing binary fails the tests rather than
//! skipping them.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::Sqld;

/// Rows in `pgbench_accounts`.
const ACCOUNTS: i64 = 5000;
/// Length of the timed (`-T`) runs, in seconds.
const DURATION_SECS: &str = "2";
/// Transactions per client for the counted (`-t`) update run.
const UPDATES_PER_CLIENT: i64 = 200;
/// Added to one balance by each update transaction.
const UPDATE_DELTA: i64 = 3;
/// Longest any single pgbench run may take (a `-T 2` run, plus a busy
/// timeout or two).
const PGBENCH_TIMEOUT: Duration = Duration::from_secs(25);

const SCHEMA: &str = "
CREATE TABLE pgbench_accounts(aid INTEGER PRIMARY KEY, bid INTEGER, abalance INTEGER, filler TEXT);
CREATE TABLE pgbench_history(tid INTEGER, bid INTEGER, aid INTEGER, delta INTEGER, mtime TIMESTAMP, filler TEXT);
";

fn read_script() -> String {
    format!(
        "\\set aid random(1, {ACCOUNTS})\n\
         SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n"
    )
}

fn update_script() -> String {
    format!(
        "\\set aid random(1, {ACCOUNTS})\n\
         \\set delta {UPDATE_DELTA}\n\
         UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;\n"
    )
}

fn tpcb_script() -> String {
    format!(
        "\\set aid random(1, {ACCOUNTS})\n\
         \\set tid random(1, 10)\n\
         \\set delta random(-5000, 5000)\n\
         BEGIN;\n\
         UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;\n\
         SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n\
         INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, 1, :aid, :delta, CURRENT_TIMESTAMP);\n\
         END;\n"
    )
}

/// A started server with the accounts loaded, and a place for scripts.
struct Bench {
    sqld: Sqld,
    scripts: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Bench {
    fn start() -> Bench {
        let sqld = Sqld::start();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt.block_on(async {
            let (client, connection) =
                tokio_postgres::connect(&sqld.conn_str(), tokio_postgres::NoTls)
                    .await
                    .expect("connecting to sqld");
            tokio::spawn(connection);
            client
        });
        let bench = Bench {
            sqld,
            scripts: tempfile::tempdir().unwrap(),
            rt,
            client,
        };
        bench.exec(SCHEMA);
        bench.exec(&format!(
            "WITH RECURSIVE n(aid) AS (SELECT 1 UNION ALL SELECT aid + 1 FROM n WHERE aid < {ACCOUNTS}) \
             INSERT INTO pgbench_accounts SELECT aid, 1, 0, '' FROM n"
        ));
        assert_eq!(
            bench.scalar("SELECT count(*) FROM pgbench_accounts"),
            ACCOUNTS
        );
        bench
    }

    fn exec(&self, sql: &str) {
        self.rt
            .block_on(self.client.batch_execute(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    /// The first column of the only row, as an integer (NULL is 0).
    fn scalar(&self, sql: &str) -> i64 {
        let rows = self
            .rt
            .block_on(self.client.simple_query(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        let row = rows
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{sql}: no row"));
        row.get(0).map_or(0, |v| v.parse().unwrap())
    }

    /// `sum(abalance)`, and the count and `sum(delta)` of the history.
    fn totals(&self) -> (i64, i64, i64) {
        (
            self.scalar("SELECT sum(abalance) FROM pgbench_accounts"),
            self.scalar("SELECT count(*) FROM pgbench_history"),
            self.scalar("SELECT sum(delta) FROM pgbench_history"),
        )
    }

    /// Runs pgbench with `script` and `args`; asserts it succeeded and
    /// returns the number of transactions it processed.
    fn run(&self, mode: &str, clients: usize, name: &str, script: &str, args: &[&str]) -> i64 {
        let path = self.scripts.path().join(format!("{name}.sql"));
        std::fs::write(&path, script).unwrap();
        let clients = clients.to_string();
        let port = self.sqld.port().to_string();
        let mut cmd = Command::new("pgbench");
        cmd.args(["-n", "-M", mode, "-c", &clients, "-j", &clients])
            .args(args)
            .arg("-f")
            .arg(&path)
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "sqld", "sqld"])
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICE")
            .env("PGCONNECT_TIMEOUT", "5")
            .stdin(Stdio::null());
        let out = run_bounded(cmd, PGBENCH_TIMEOUT);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let context =
            format!("pgbench -M {mode} -c {clients} {name}:\nstdout:\n{stdout}\nstderr:\n{stderr}");
        assert!(out.status.success(), "exit {}; {context}", out.status);
        assert!(!stderr.contains("error"), "{context}");
        if let Some(line) = stdout
            .lines()
            .find(|l| l.starts_with("number of failed transactions:"))
        {
            assert!(
                line.starts_with("number of failed transactions: 0 "),
                "{context}"
            );
        }
        for line in stdout.lines().filter(|l| l.starts_with("tps = ")) {
            println!("pgbench -M {mode:<8} -c {clients} {name:<6} {line}");
        }
        processed(&stdout).unwrap_or_else(|| panic!("no transaction count; {context}"))
    }
}

/// From `number of transactions actually processed: 800/800` (counted
/// runs) or `...: 5123` (timed runs).
fn processed(stdout: &str) -> Option<i64> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("number of transactions actually processed: "))?;
    let figures = line.rsplit(": ").next()?;
    let (done, planned) = match figures.split_once('/') {
        Some((done, planned)) => (done, Some(planned)),
        None => (figures, None),
    };
    let done: i64 = done.trim().parse().ok()?;
    if let Some(planned) = planned {
        assert_eq!(planned.trim().parse::<i64>().ok()?, done, "{line}");
    }
    Some(done)
}

fn run_bounded(cmd: Command, timeout: Duration) -> Output {
    common::run_bounded(
        cmd,
        timeout,
        "it comes with Debian's postgresql-client package: apt-get install postgresql-client",
    )
}

/// The three scripts in one query mode, with 1 and then 4 clients.
fn bench_mode(mode: &str) {
    let bench = Bench::start();
    for clients in [1, 4] {
        let processed = bench.run(
            mode,
            clients,
            "read",
            &read_script(),
            &["-T", DURATION_SECS],
        );
        assert!(processed > 0);

        let (before, _, _) = bench.totals();
        let per_client = UPDATES_PER_CLIENT.to_string();
        let processed = bench.run(
            mode,
            clients,
            "update",
            &update_script(),
            &["-t", &per_client],
        );
        assert_eq!(processed, clients as i64 * UPDATES_PER_CLIENT);
        let (after, _, _) = bench.totals();
        assert_eq!(
            after - before,
            processed * UPDATE_DELTA,
            "-M {mode} -c {clients}: every update must be counted once"
        );

        let (balance_before, count_before, delta_before) = bench.totals();
        let processed = bench.run(
            mode,
            clients,
            "tpcb",
            &tpcb_script(),
            &["-T", DURATION_SECS],
        );
        assert!(processed > 0);
        let (balance_after, count_after, delta_after) = bench.totals();
        assert_eq!(
            count_after - count_before,
            processed,
            "-M {mode} -c {clients}: one history row per committed transaction"
        );
        assert_eq!(
            balance_after - balance_before,
            delta_after - delta_before,
            "-M {mode} -c {clients}: balances and history disagree"
        );
    }
}

#[test]
fn pgbench_simple_protocol() {
    bench_mode("simple");
}

// Parse inside `BEGIN` must not take a read snapshot before the first
// write, or concurrent TPC-B clients would fail with 55P03 instead of
// waiting for the write lock (a regression test for that).
#[test]
fn pgbench_extended_protocol() {
    bench_mode("extended");
}

// pgbench parses each statement of the script on first use, inside the
// transaction.
#[test]
fn pgbench_prepared_statements() {
    bench_mode("prepared");
}

/// `pgbench -i` end to end (drop, create with fillfactor, COPY FREEZE,
/// vacuum analyze, primary keys), then a timed run of its built-in TPC-B
/// on the tables it made; the balances must add up afterwards.
#[test]
fn pgbench_initialises_and_runs_its_own_tpcb() {
    let sqld = Sqld::start();
    let port = sqld.port().to_string();
    let pgbench = |args: &[&str]| {
        let mut cmd = Command::new("pgbench");
        cmd.args(args)
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "sqld", "sqld"])
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICE")
            .env("PGCONNECT_TIMEOUT", "5")
            .stdin(Stdio::null());
        let out = run_bounded(cmd, Duration::from_secs(120));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success() && !stderr.contains("error"),
            "pgbench {args:?}: exit {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        );
        stdout
    };
    // Twice: the second run drops what the first made.
    pgbench(&["-i", "-s", "1"]);
    pgbench(&["-i", "-s", "1"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(&sqld.conn_str(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    });
    let count = |sql: &str| -> i64 { rt.block_on(client.query_one(sql, &[])).unwrap().get(0) };
    assert_eq!(count("select count(*) from pgbench_accounts"), 100_000);
    assert_eq!(count("select count(*) from pgbench_tellers"), 10);
    assert_eq!(count("select count(*) from pgbench_branches"), 1);
    // The primary key pgbench added: a second row with the same key fails.
    let dup = rt.block_on(client.execute(
        "insert into pgbench_branches (bid, bbalance) values (1, 0)",
        &[],
    ));
    assert_eq!(
        dup.unwrap_err()
            .as_db_error()
            .map(|e| e.code().code().to_owned())
            .as_deref(),
        Some("23505")
    );
    let stdout = pgbench(&["-T", DURATION_SECS, "-c", "2", "-j", "2"]);
    println!(
        "pgbench built-in TPC-B after pgbench -i: {}",
        stdout
            .lines()
            .filter(|l| l.starts_with("tps"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let done = processed(&stdout).expect("a transaction count");
    assert!(done > 0, "{stdout}");
    assert_eq!(count("select count(*) from pgbench_history"), done);
    let accounts = count("select coalesce(sum(abalance), 0) from pgbench_accounts");
    let history = count("select coalesce(sum(delta), 0) from pgbench_history");
    assert_eq!(accounts, history);
    assert_eq!(
        count("select coalesce(sum(tbalance), 0) from pgbench_tellers"),
        history
    );
}
