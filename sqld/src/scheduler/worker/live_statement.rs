//! Statements that stay open between requests, on the session's
//! connection: cursors' queries, stepped a few rows per FETCH.
//!
//! rusqlite ties a statement to a borrow of its connection, and the
//! worker's connection is borrowed only for one request. So live statements
//! borrow a `LiveConnection`: a non-owning `Connection` over the same SQLite
//! handle (same transaction, sandbox and progress handler), boxed so that
//! it never moves. There is one per session connection, kept as long as
//! that connection: dropping a rusqlite `Connection`, even one that does
//! not own its handle, removes the handle's progress handler and authorizer.

use libsql_sys::rusqlite::types::Value;
use libsql_sys::rusqlite::{Connection, Row, Statement};

use super::bind_params;
use crate::database::prepare_with_current_schema;
use crate::error::SqlError;

pub(super) struct LiveConnection {
    view: Box<Connection>,
}

// SAFETY: used only by the worker owning it, one request at a time, as the
// worker's connection itself is (a `Connection` is `Send`).
unsafe impl Send for LiveConnection {}

impl LiveConnection {
    /// A view of `conn`'s handle.
    ///
    /// # Safety
    /// It must be dropped before `conn` is closed, once every statement it
    /// prepared is, and only when `conn` no longer needs its hooks (it is
    /// about to close).
    pub(super) unsafe fn of(conn: &Connection) -> Result<Self, SqlError> {
        let view = Connection::from_handle(conn.handle())?;
        Ok(LiveConnection {
            view: Box::new(view),
        })
    }

    pub(super) fn prepare(&self, sql: &str) -> Result<LiveStatement, SqlError> {
        let view: &Connection = &self.view;
        let statement = prepare_with_current_schema(view, || view.prepare(sql))?;
        // SAFETY: the view is boxed (it stays where the statement points)
        // and outlives its statements (see `of`).
        let statement =
            unsafe { std::mem::transmute::<Statement<'_>, Statement<'static>>(statement) };
        Ok(LiveStatement { statement })
    }
}

/// A statement of a `LiveConnection`, dropped (finalized) before it.
pub(super) struct LiveStatement {
    statement: Statement<'static>,
}

// SAFETY: as for `LiveConnection`.
unsafe impl Send for LiveStatement {}

impl LiveStatement {
    pub(super) fn statement(&self) -> &Statement<'static> {
        &self.statement
    }

    pub(super) fn bind(&mut self, params: &[Value]) -> Result<(), SqlError> {
        bind_params(&mut self.statement, params)
    }

    /// Steps on from where the statement stopped, handing each row to
    /// `each` until it answers that it wants no more. Returns false once
    /// the statement has no more rows (it must not be stepped again: it
    /// would start over).
    pub(super) fn next_rows(
        &mut self,
        mut each: impl FnMut(&Row<'_>) -> Result<bool, SqlError>,
    ) -> Result<bool, SqlError> {
        let mut rows = self.statement.raw_query();
        let more = loop {
            match rows.next() {
                Ok(Some(row)) => match each(row) {
                    Ok(true) => continue,
                    Ok(false) => break Ok(true),
                    Err(e) => break Err(e),
                },
                Ok(None) => break Ok(false),
                Err(e) => break Err(e.into()),
            }
        };
        // Dropped, `rows` would reset the statement to its start; forgotten
        // (it owns no memory), it leaves the statement where it stopped.
        std::mem::forget(rows);
        more
    }
}
