//! The write load: clients moving money between accounts, through the
//! primary and through the replicas (which forward writes). Each transfer
//! is one transaction of three statements: debit one account, credit
//! another, record the transfer under a unique id. The checks use that:
//! every acknowledged id must be present, and each account's balance must
//! equal what the recorded transfers make it, so a transaction that is
//! half visible (a debit without its credit or its record) shows.
//!
//! Half the clients send each transfer as one simple-protocol string, the
//! other half as an extended-protocol transaction, statement by statement.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::rng::Rng;

pub const ACCOUNTS: i64 = 16;
pub const INITIAL_BALANCE: i64 = 1000;

/// Bound on one transfer; past it the outcome is unknown and the client
/// reconnects (a stopped replica or primary never answers).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);

/// The schema and the initial balances.
pub fn schema() -> String {
    let mut sql = String::from(
        "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
         CREATE TABLE transfers(id TEXT PRIMARY KEY, src INTEGER NOT NULL,
                                dst INTEGER NOT NULL, amount INTEGER NOT NULL);",
    );
    for id in 0..ACCOUNTS {
        sql.push_str(&format!(
            "INSERT INTO accounts VALUES ({id}, {INITIAL_BALANCE});"
        ));
    }
    sql
}

/// What the clients learned: the transfers the server acknowledged (with
/// when), and how many ended without an answer or with an error, by cause
/// (a SQLSTATE, `closed`, `timeout` or `io`).
#[derive(Default)]
pub struct Ledger {
    pub acknowledged: Vec<(Instant, String)>,
    pub failed: u64,
    pub causes: BTreeMap<String, u64>,
}

impl Ledger {
    fn fail(&mut self, cause: String) {
        self.failed += 1;
        *self.causes.entry(cause).or_default() += 1;
    }

    /// Acknowledgements received after `t`.
    pub fn acked_since(&self, t: Instant) -> usize {
        self.acknowledged.iter().filter(|(at, _)| *at > t).count()
    }
}

/// The running clients; `stop` ends them.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub ledger: Arc<Mutex<Ledger>>,
}

/// Starts one client per connection string (`targets[i]`).
pub fn start(round: usize, targets: Vec<String>, seed: u64) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let tasks = targets
        .into_iter()
        .enumerate()
        .map(|(i, target)| {
            let client = Client {
                round,
                id: i,
                target,
                extended: i % 2 == 1,
                rng: Rng::new(seed ^ ((i as u64 + 1) << 32)),
                stop: stop.clone(),
                ledger: ledger.clone(),
            };
            tokio::spawn(client.run())
        })
        .collect();
    Load {
        stop,
        tasks,
        ledger,
    }
}

impl Load {
    /// Stops the clients and waits for them (each finishes its current
    /// transfer, which is bounded by the statement timeout).
    pub async fn stop(self) -> Arc<Mutex<Ledger>> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            if tokio::time::timeout(STATEMENT_TIMEOUT * 3, t)
                .await
                .is_err()
            {
                eprintln!("a client did not stop in time");
            }
        }
        self.ledger
    }
}

struct Client {
    round: usize,
    id: usize,
    target: String,
    extended: bool,
    rng: Rng,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
}

impl Client {
    async fn run(mut self) {
        let mut seq = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            let Some((client, driver)) = self.connect().await else {
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            };
            while !self.stop.load(Ordering::SeqCst) {
                seq += 1;
                let id = format!("r{}-c{}-{seq}", self.round, self.id);
                let src = self.rng.below(ACCOUNTS as u64) as i64;
                let dst = (src + 1 + self.rng.below(ACCOUNTS as u64 - 1) as i64) % ACCOUNTS;
                let amount = 1 + self.rng.below(10) as i64;
                let outcome = tokio::time::timeout(
                    STATEMENT_TIMEOUT,
                    transfer(&client, self.extended, &id, src, dst, amount),
                )
                .await;
                let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
                match outcome {
                    Ok(Ok(())) => ledger.acknowledged.push((Instant::now(), id)),
                    Ok(Err(e)) => {
                        // A failed transfer may leave its transaction open
                        // or aborted: start clean on a new session.
                        let cause = match e.code() {
                            Some(code) => code.code().to_string(),
                            None if e.is_closed() => "closed".to_string(),
                            None => "io".to_string(),
                        };
                        ledger.fail(cause);
                        break;
                    }
                    Err(_) => {
                        ledger.fail("timeout".to_string());
                        break;
                    }
                }
            }
            driver.abort();
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
    }

    async fn connect(&self) -> Option<(tokio_postgres::Client, tokio::task::JoinHandle<()>)> {
        let connecting = tokio_postgres::connect(&self.target, tokio_postgres::NoTls);
        let (client, conn) = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .ok()?
            .ok()?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Some((client, driver))
    }
}

/// One transfer; Ok only when COMMIT was acknowledged.
async fn transfer(
    c: &tokio_postgres::Client,
    extended: bool,
    id: &str,
    src: i64,
    dst: i64,
    amount: i64,
) -> Result<(), tokio_postgres::Error> {
    if !extended {
        // Values are our own integers and an id of [a-z0-9-]: no quoting
        // issue. One string, one round trip, one transaction.
        return c
            .batch_execute(&format!(
                "BEGIN;
                 UPDATE accounts SET balance = balance - {amount} WHERE id = {src};
                 UPDATE accounts SET balance = balance + {amount} WHERE id = {dst};
                 INSERT INTO transfers VALUES ('{id}', {src}, {dst}, {amount});
                 COMMIT;"
            ))
            .await;
    }
    c.batch_execute("BEGIN").await?;
    let steps = async {
        c.execute(
            "UPDATE accounts SET balance = balance - $1 WHERE id = $2",
            &[&amount, &src],
        )
        .await?;
        c.execute(
            "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
            &[&amount, &dst],
        )
        .await?;
        c.execute(
            "INSERT INTO transfers VALUES ($1, $2, $3, $4)",
            &[&id, &src, &dst, &amount],
        )
        .await?;
        c.batch_execute("COMMIT").await
    };
    match steps.await {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = c.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}
