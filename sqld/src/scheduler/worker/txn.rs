//! The Postgres transaction state machine on a SQLite connection: a failed
//! statement poisons the transaction until ROLLBACK (unless the session
//! speaks the SQLite API dialect), several statements in one simple query
//! run as one implicit transaction, redundant BEGIN/COMMIT are answered
//! without SQLite, and the write gate is held from a transaction's first
//! write to its end.

use std::time::Duration;

use super::{no_rows, Worker};
use crate::database::{Database, WriteGateHeld};
use crate::error::{sqlstate, SqlError};
use crate::query::{StatementResult, TxnState};
use crate::sql::TxnControl;

impl Worker {
    pub(super) fn release_write_gate(&mut self) {
        if self.write_gate.take().is_some() {
            self.guard.end_write_transaction();
            self.wrote = true;
        }
    }

    /// The transaction held the write gate too long: roll it back now, so
    /// other writers go on, and leave the session's transaction failed
    /// (the client's ROLLBACK ends it, as after any error).
    pub fn abort_transaction(&mut self) {
        let in_txn = self.txn != TxnState::Idle || !self.conn.is_autocommit();
        self.cursors.close_all();
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.release_write_gate();
        self.read_frame_no = None;
        self.txn = if in_txn && !self.limits.sqlite_api {
            TxnState::Failed
        } else {
            TxnState::Idle
        };
    }

    pub fn txn(&self) -> TxnState {
        self.txn
    }

    /// Commits an implicit transaction, or rolls it back if a statement (or
    /// the commit itself) failed.
    pub(super) fn end_implicit_transaction(
        &mut self,
        results: &mut Vec<Result<StatementResult, SqlError>>,
    ) {
        let failed = results.iter().any(Result::is_err);
        self.cursors.close_all();
        if !self.conn.is_autocommit() {
            let end = if failed { "ROLLBACK" } else { "COMMIT" };
            if let Err(e) = self.conn.execute_batch(end) {
                let _ = self.conn.execute_batch("ROLLBACK");
                results.push(Err(e.into()));
            }
        }
        self.txn = TxnState::Idle;
    }

    /// After an error: Postgres aborts the whole transaction; SQLite keeps
    /// it open (unless the error rolled it back), which a client of the
    /// SQLite API dialect expects.
    pub(super) fn poison_on_error(&mut self) {
        if self.limits.sqlite_api {
            self.sync_txn_state();
            return;
        }
        if self.txn != TxnState::Idle || !self.conn.is_autocommit() {
            self.txn = TxnState::Failed;
        }
    }

    pub(super) fn sync_txn_state(&mut self) {
        self.txn = if self.conn.is_autocommit() {
            self.read_frame_no = None;
            TxnState::Idle
        } else {
            TxnState::Active
        };
    }

    /// BEGIN inside a transaction and COMMIT/ROLLBACK outside one are
    /// warnings in Postgres, not errors: answer them without SQLite.
    pub(super) fn redundant_txn_control(&self, control: TxnControl) -> Option<&'static str> {
        let in_txn = !self.conn.is_autocommit();
        match control {
            TxnControl::Begin if in_txn => Some("BEGIN"),
            TxnControl::Commit if !in_txn => Some("COMMIT"),
            TxnControl::Rollback if !in_txn => Some("ROLLBACK"),
            _ => None,
        }
    }

    pub(super) fn run_in_failed_transaction(
        &mut self,
        sql: &str,
        control: Option<TxnControl>,
    ) -> Result<StatementResult, SqlError> {
        match control {
            Some(TxnControl::Rollback) | Some(TxnControl::Commit) => {
                if !self.conn.is_autocommit() {
                    self.conn.execute_batch("ROLLBACK")?;
                }
                self.txn = TxnState::Idle;
                Ok(no_rows("ROLLBACK"))
            }
            Some(TxnControl::RollbackToSavepoint) => {
                self.conn.execute_batch(sql)?;
                self.sync_txn_state();
                Ok(no_rows("ROLLBACK"))
            }
            _ => Err(SqlError::in_failed_transaction()),
        }
    }
}

/// A primary that learned a newer one was promoted refuses every write
/// (nothing it acknowledged now would survive the failover), as does one
/// cut off by `--fence-after`; one handing over refuses new ones.
pub(super) fn write_refusal(db: &Database) -> Option<SqlError> {
    let refusal = db.log()?.refuses_writers()?;
    Some(SqlError::new(
        sqlstate::READ_ONLY_TRANSACTION,
        refusal.to_string(),
    ))
}

/// Before a session's first write in a transaction (or a BEGIN that takes
/// the write lock): queue for the database's write gate, for the busy
/// timeout at most, and no longer than the statement timeout leaves (the
/// wait is part of the statement, as a lock wait is in Postgres).
pub(super) fn take_write_gate(
    db: &Database,
    statement_time_left: Option<Duration>,
) -> Result<WriteGateHeld, SqlError> {
    if let Some(refused) = write_refusal(db) {
        return Err(refused);
    }
    let wait = statement_time_left.map_or(db.busy_timeout(), |left| left.min(db.busy_timeout()));
    let held = db.write_gate().acquire(wait).ok_or_else(|| {
        if statement_time_left.is_some_and(|left| left <= db.busy_timeout()) {
            SqlError::statement_timeout()
        } else {
            SqlError::new(
                sqlstate::LOCK_NOT_AVAILABLE,
                "could not obtain the database write lock within the busy timeout: another transaction is writing",
            )
        }
    })?;
    // Fenced or handing over while this writer queued for the gate.
    match write_refusal(db) {
        Some(refused) => Err(refused),
        None => Ok(held),
    }
}

/// The state machine driven through a worker on a temporary primary, with
/// no sockets: each case is a sequence of requests (a simple query's text)
/// and what each statement answers (its tag, or `!` and its SQLSTATE),
/// with the session's state after each request.
#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::Worker;
    use crate::database::Database;
    use crate::query::{ExecuteMode, Outcome, Request, TxnState};
    use crate::scheduler::{SessionConfig, StatementGuard};

    use TxnState::{Active as T, Failed as E, Idle as I};

    /// (simple query, answers per statement, state after)
    type Step = (&'static str, &'static [&'static str], TxnState);

    const POSTGRES: &[(&str, &[Step])] = &[
        (
            "a failed statement poisons the transaction until ROLLBACK",
            &[
                ("begin", &["BEGIN"], T),
                ("select nosuch", &["!42703"], E),
                ("select 1", &["!25P02"], E),
                ("rollback", &["ROLLBACK"], I),
                ("select 1", &["SELECT 1"], I),
            ],
        ),
        (
            "COMMIT of a failed transaction rolls it back",
            &[
                ("begin", &["BEGIN"], T),
                ("create table t(a)", &["CREATE TABLE"], T),
                ("insert into nosuch values (1)", &["!42P01"], E),
                ("commit", &["ROLLBACK"], I),
                (
                    "select count(*) from sqlite_schema where name = 't'",
                    &["SELECT 1"],
                    I,
                ),
            ],
        ),
        (
            "redundant BEGIN, COMMIT and ROLLBACK are answered, not errors",
            &[
                ("commit", &["COMMIT"], I),
                ("rollback", &["ROLLBACK"], I),
                ("begin", &["BEGIN"], T),
                ("begin", &["BEGIN"], T),
                ("commit", &["COMMIT"], I),
            ],
        ),
        (
            "several statements in one query are one implicit transaction",
            &[
                (
                    "create table u(a); insert into u values (1); insert into nosuch values (1)",
                    &["CREATE TABLE", "INSERT 0 1", "!42P01"],
                    I,
                ),
                ("select * from u", &["!42P01"], I),
                (
                    "create table u(a); insert into u values (1)",
                    &["CREATE TABLE", "INSERT 0 1"],
                    I,
                ),
                ("select * from u", &["SELECT 1"], I),
            ],
        ),
        (
            "a query that manages its own transaction leaves it open",
            &[
                ("begin; create table v(a)", &["BEGIN", "CREATE TABLE"], T),
                (
                    "insert into v values (1); commit",
                    &["INSERT 0 1", "COMMIT"],
                    I,
                ),
            ],
        ),
        (
            "ROLLBACK TO SAVEPOINT recovers a failed transaction",
            &[
                ("begin", &["BEGIN"], T),
                ("savepoint s", &["SAVEPOINT"], T),
                ("select nosuch", &["!42703"], E),
                ("rollback to savepoint s", &["ROLLBACK"], T),
                ("select 1", &["SELECT 1"], T),
                ("commit", &["COMMIT"], I),
            ],
        ),
    ];

    /// SQLite API dialect: an error leaves the transaction as SQLite has it.
    const SQLITE_API: &[(&str, &[Step])] = &[(
        "an error does not poison the transaction",
        &[
            ("begin", &["BEGIN"], T),
            ("select nosuch", &["!42703"], T),
            ("select 1", &["SELECT 1"], T),
            ("commit", &["COMMIT"], I),
        ],
    )];

    fn worker(dir: &std::path::Path, sqlite_api: bool) -> Worker {
        let db = Database::open_primary(dir, Duration::from_secs(1)).unwrap();
        let config = SessionConfig {
            max_result_bytes: 1 << 20,
            statement_timeout: None,
            write_transaction_timeout: None,
            upstream: None,
            sqlite_api,
            shutdown: None,
            activity: None,
        };
        Worker::new(db, config, Arc::new(StatementGuard::default())).unwrap()
    }

    fn answers(worker: &mut Worker, sql: &str) -> Vec<String> {
        let request = Request::Execute {
            sql: sql.into(),
            params: Vec::new(),
            mode: ExecuteMode::Batch,
            column_types: None,
        };
        let Outcome::Executed(results) = worker.handle(request).outcome else {
            panic!("{sql}: not executed");
        };
        results
            .into_iter()
            .map(|r| match r {
                Ok(r) => r.tag,
                Err(e) => format!("!{}", e.code),
            })
            .collect()
    }

    fn run(cases: &[(&str, &[Step])], sqlite_api: bool) {
        for (case, steps) in cases {
            let dir = tempfile::tempdir().unwrap();
            let mut w = worker(dir.path(), sqlite_api);
            for (sql, expected, state) in *steps {
                assert_eq!(answers(&mut w, sql), *expected, "{case}: {sql}");
                assert_eq!(w.txn(), *state, "{case}: state after {sql}");
            }
        }
    }

    #[test]
    fn postgres_transaction_states() {
        run(POSTGRES, false);
    }

    #[test]
    fn sqlite_api_transaction_states() {
        run(SQLITE_API, true);
    }
}
