//! On a replica: which statements go to the primary (those that write,
//! and every statement of a transaction that has written there), and the
//! waits that make a session read its own writes.

use libsql_sys::rusqlite::types::Value;
use pgwire::api::Type;

use super::{install_session_functions, session_connection, Worker};
use crate::database::prepare_with_current_schema;
use crate::error::{sqlstate, SqlError};
use crate::query::{StatementResult, TxnState};
use crate::scheduler::{ForwardStatement, Upstream};

impl Worker {
    /// On a replica, before a statement is prepared or run: waits until the
    /// session's last forwarded write has arrived (read-your-writes), and
    /// reopens the connection if the database was replaced meanwhile.
    pub(super) fn catch_up(&mut self) -> Result<(), SqlError> {
        if let Some(upstream) = self.limits.upstream.clone() {
            upstream.wait_for(self.min_read_frame)?;
            self.reopen_if_replaced(upstream.as_ref())?;
        }
        Ok(())
    }

    /// On a replica, outside a transaction: reopens the connection if the
    /// database was replaced by a (re-)bootstrap since it was opened. SQLite
    /// notices schema changes by the schema cookie, which only increases
    /// within one database's history; across a snapshot load the cookie the
    /// connection cached can reappear with another schema behind it, and a
    /// table would stay "missing" (or a plan stale) for good.
    pub(super) fn reopen_if_replaced(&mut self, upstream: &dyn Upstream) -> Result<(), SqlError> {
        let generation = upstream.generation();
        if generation != self.opened_in_generation && self.conn.is_autocommit() {
            let conn = session_connection(&self.db, &self.guard, self.limits.max_result_bytes)
                .map_err(|e| SqlError::new(sqlstate::IO_ERROR, e.to_string()))?;
            // The session's own functions (settings, advisory locks) come
            // with every connection it opens.
            install_session_functions(&conn, &self.settings, &self.advisory_locks, &self.guard)
                .map_err(SqlError::from)?;
            self.cursors.release_connection();
            self.conn = conn;
            self.side = None;
            self.prepared.clear();
            self.opened_in_generation = generation;
        }
        Ok(())
    }

    /// On a replica, whether the statement (as SQLite runs it) writes, so
    /// that the primary must run it (by `sqlite3_stmt_readonly`, not by its
    /// text). First the session catches up to read its own writes; a read
    /// inside a local transaction records the frame its snapshot saw.
    pub(super) fn must_forward(&mut self, runnable: &str) -> Result<bool, SqlError> {
        self.catch_up()?;
        let Some(upstream) = self.limits.upstream.clone() else {
            return Ok(false);
        };
        self.db.ensure_catalog(&self.conn, runnable)?;
        let writes =
            !prepare_with_current_schema(&self.conn, || self.conn.prepare_cached(runnable))?
                .readonly();
        if !writes && !self.conn.is_autocommit() && self.read_frame_no.is_none() {
            self.read_frame_no = Some(upstream.applied());
        }
        Ok(writes)
    }

    /// A replica's first write of a statement or transaction: it goes to the
    /// primary. A local read transaction ends here, and the primary checks
    /// that what it read is still current (see `replication::remote`).
    pub(super) fn forward_first_write(
        &mut self,
        sql: &str,
        params: &[Value],
        column_types: Option<&[Type]>,
    ) -> Result<StatementResult, SqlError> {
        let begin_after_frame = if self.conn.is_autocommit() {
            None
        } else {
            let seen = match (self.read_frame_no.take(), &self.limits.upstream) {
                (Some(seen), _) => seen,
                (None, Some(upstream)) => upstream.applied(),
                (None, None) => 0,
            };
            let _ = self.conn.execute_batch("ROLLBACK");
            Some(seen)
        };
        self.forward(sql, params, column_types, begin_after_frame)
    }

    pub(super) fn forward(
        &mut self,
        sql: &str,
        params: &[Value],
        column_types: Option<&[Type]>,
        begin_after_frame: Option<u64>,
    ) -> Result<StatementResult, SqlError> {
        let upstream = self
            .limits
            .upstream
            .clone()
            .expect("forwarding happens on replicas");
        let forwarded = upstream.forward(ForwardStatement {
            session: self.remote.as_deref(),
            begin_after_frame,
            sql,
            params,
            column_types,
            sqlite_api: self.limits.sqlite_api,
            timeout: self.guard.remaining(),
            stop: &|| self.guard.should_stop(),
        });
        let forwarded = match forwarded {
            Ok(f) => f,
            Err(e) => {
                // The primary's transaction, if any, is out of reach: the
                // client must roll back.
                if self.remote.take().is_some() || begin_after_frame.is_some() {
                    self.txn = TxnState::Failed;
                }
                return Err(e);
            }
        };
        self.remote = forwarded.session;
        self.txn = forwarded.txn;
        self.min_read_frame = self.min_read_frame.max(forwarded.frame_no);
        forwarded.result
    }
}

/// A session that ends inside a forwarded transaction (its client left)
/// rolls it back on the primary at once: left to the primary's idle
/// timeout, it would hold the primary's write lock until then.
impl Drop for Worker {
    fn drop(&mut self) {
        if self.remote.is_some() {
            let _ = self.forward("ROLLBACK", &[], None, None);
        }
    }
}
