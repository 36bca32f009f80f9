//! The Postgres transaction state machine on a SQLite connection: a failed
//! statement poisons the transaction until ROLLBACK (unless the session
//! speaks the SQLite API dialect), several statements in one simple query
//! run as one implicit transaction, redundant BEGIN/COMMIT are answered
//! without SQLite, and the write gate is held from a transaction's first
//! write to its end.

use super::{no_rows, Worker};
use crate::database::{Database, WriteGateHeld};
use crate::error::{sqlstate, SqlError};
use crate::query::{StatementResult, TxnState};
use crate::sql::TxnControl;

impl Worker {
    pub(super) fn release_write_gate(&mut self) {
        if self.write_gate.take().is_some() {
            self.guard.end_write_transaction();
        }
    }

    /// The transaction held the write gate too long: roll it back now, so
    /// other writers go on, and leave the session's transaction failed
    /// (the client's ROLLBACK ends it, as after any error).
    pub fn abort_transaction(&mut self) {
        let in_txn = self.txn != TxnState::Idle || !self.conn.is_autocommit();
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

/// Before a session's first write in a transaction (or a BEGIN that takes
/// the write lock): queue for the database's write gate.
pub(super) fn take_write_gate(db: &Database) -> Result<WriteGateHeld, SqlError> {
    db.write_gate().acquire(db.busy_timeout()).ok_or_else(|| {
        SqlError::new(
            sqlstate::LOCK_NOT_AVAILABLE,
            "could not obtain the database write lock within the busy timeout: another transaction is writing",
        )
    })
}
