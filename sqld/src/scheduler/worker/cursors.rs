//! Cursors: `DECLARE`, `FETCH`, `MOVE` and `CLOSE`. A cursor is its query's
//! statement, kept open on the session's connection and stepped as it is
//! fetched, so a FETCH holds only the rows it returns (in the session's
//! result budget), however large the query. As in Postgres without
//! `WITH HOLD`, a cursor lives in a transaction block and ends with it.
//! Cursors only go forward (SQLite statements do).

use std::collections::HashMap;
use std::sync::Arc;

use libsql_sys::rusqlite::types::Value;
use libsql_sys::rusqlite::Connection;
use pgwire::api::Type;

use super::live_statement::{LiveConnection, LiveStatement};
use super::{copy_row, no_rows, ResultShape, Worker};
use crate::error::{sqlstate, SqlError};
use crate::memory::Held;
use crate::query::{PreparedStatement, StatementResult};
use crate::sql::{self, CursorCommand, Direction};

/// Cursors one session may have open at once: each holds a statement (and
/// what SQLite keeps for it, such as a sorter) until it is closed.
const MAX_OPEN_CURSORS: usize = 256;
const DUPLICATE_CURSOR: &str = "42P03";
const INVALID_CURSOR_NAME: &str = "34000";
const NO_ACTIVE_TRANSACTION: &str = "25P01";

/// A session's open cursors, by name.
#[derive(Default)]
pub(super) struct Cursors {
    /// Declared before `connection`, so dropped first.
    open: HashMap<String, Cursor>,
    /// Their statements' connection: made at the first DECLARE, kept until
    /// the session's connection closes.
    connection: Option<LiveConnection>,
}

struct Cursor {
    statement: LiveStatement,
    /// Typed at DECLARE: undeclared columns by the first row.
    shape: ResultShape,
    /// The first row, read at DECLARE to type the columns, not fetched yet.
    first_row: Option<(Vec<Value>, Held)>,
    /// Rows fetched or moved over so far.
    position: u64,
    /// The statement has returned its last row.
    exhausted: bool,
}

impl Cursors {
    pub(super) fn close_all(&mut self) {
        self.open.clear();
    }

    /// Before the session's connection closes (or is replaced).
    pub(super) fn release_connection(&mut self) {
        self.close_all();
        self.connection = None;
    }

    fn prepare(&mut self, conn: &Connection, sql: &str) -> Result<LiveStatement, SqlError> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            // SAFETY: the worker releases it before it closes or replaces
            // `conn` (see `release_connection` and the worker's fields).
            none => none.insert(unsafe { LiveConnection::of(conn) }?),
        };
        connection.prepare(sql)
    }
}

impl Worker {
    pub(super) fn run_cursor_command(
        &mut self,
        command: &Result<CursorCommand, SqlError>,
        params: &[Value],
        column_types: Option<&[Type]>,
    ) -> Result<StatementResult, SqlError> {
        let result = command.clone().and_then(|command| match command {
            CursorCommand::Declare { name, query } => self.declare(name, query, params),
            CursorCommand::Fetch {
                name,
                direction,
                moves,
            } => self.fetch(&name, direction, moves, column_types),
            CursorCommand::Close(Some(name)) => match self.cursors().open.remove(&name) {
                Some(_) => Ok(no_rows("CLOSE CURSOR")),
                None => Err(unknown_cursor(&name)),
            },
            CursorCommand::Close(None) => {
                self.cursors.close_all();
                Ok(no_rows("CLOSE CURSOR ALL"))
            }
        });
        if result.is_err() {
            self.poison_on_error();
        }
        result
    }

    /// Parse of a cursor command: DECLARE takes its query's parameters,
    /// FETCH returns its cursor's columns.
    pub(super) fn describe_cursor_command(
        &mut self,
        sql: &str,
        command: CursorCommand,
    ) -> Result<Arc<PreparedStatement>, SqlError> {
        let mut described = PreparedStatement {
            sql: sql.to_owned(),
            param_types: Vec::new(),
            columns: Vec::new(),
        };
        match command {
            CursorCommand::Declare { query, .. } => {
                described.param_types = self.prepare(query)?.param_types.clone();
            }
            CursorCommand::Fetch {
                name, moves: false, ..
            } => {
                let cursor = self.cursors().open.get(&name);
                described.columns = cursor
                    .ok_or_else(|| unknown_cursor(&name))?
                    .shape
                    .columns(None, &[]);
            }
            _ => {}
        }
        Ok(Arc::new(described))
    }

    /// The open cursors; none once the transaction has ended, however it
    /// ended (some ends, such as SQLite rolling back on an error, pass no
    /// COMMIT or ROLLBACK through here).
    fn cursors(&mut self) -> &mut Cursors {
        if self.conn.is_autocommit() {
            self.cursors.close_all();
        }
        &mut self.cursors
    }

    fn declare(
        &mut self,
        name: String,
        query: &str,
        params: &[Value],
    ) -> Result<StatementResult, SqlError> {
        if self.conn.is_autocommit() {
            return Err(SqlError::new(
                NO_ACTIVE_TRANSACTION,
                "DECLARE CURSOR can only be used in transaction blocks",
            ));
        }
        let open = &self.cursors().open;
        if open.contains_key(&name) {
            return Err(SqlError::new(
                DUPLICATE_CURSOR,
                format!("cursor \"{name}\" already exists"),
            ));
        }
        if open.len() >= MAX_OPEN_CURSORS {
            return Err(SqlError::new(
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "too many open cursors (at most {MAX_OPEN_CURSORS} per session): CLOSE some"
                ),
            ));
        }
        let query = sql::Statement::classify(query);
        let not_a_query = query.control.is_some()
            || query.session.is_some()
            || query.cursor.is_some()
            || query.prepared.is_some();
        // On a replica this also catches up with the session's own writes.
        if not_a_query || self.must_forward(&query.runnable)? {
            return Err(read_only_query_needed());
        }
        self.db.ensure_catalog(&self.conn, &query.runnable)?;
        let mut statement = self.cursors.prepare(&self.conn, &query.runnable)?;
        if !statement.statement().readonly() || statement.statement().column_count() == 0 {
            return Err(read_only_query_needed());
        }
        statement.bind(params)?;
        // The first row is read now, for the types of columns that declare
        // none (FETCH is described before it runs, and every FETCH must
        // send the same types), as a SELECT's types come from its values.
        let column_count = statement.statement().column_count();
        let invalid_text = self.invalid_text();
        let mut held = self.result_memory.charge();
        let mut first = None;
        let more = statement.next_rows(|row| {
            first = Some(copy_row(row, column_count, &mut held, invalid_text)?);
            Ok(false)
        })?;
        let shape = ResultShape::of(statement.statement())
            .named(|name| self.column_name(name, &query.runnable))
            .typed_by(first.as_slice());
        let cursor = Cursor {
            statement,
            shape,
            first_row: first.map(|row| (row, held)),
            position: 0,
            exhausted: !more,
        };
        self.cursors.open.insert(name, cursor);
        Ok(no_rows("DECLARE CURSOR"))
    }

    fn fetch(
        &mut self,
        name: &str,
        direction: Direction,
        moves: bool,
        column_types: Option<&[Type]>,
    ) -> Result<StatementResult, SqlError> {
        let invalid_text = self.invalid_text();
        let mut held = self.result_memory.charge();
        let cursor = self
            .cursors()
            .open
            .get_mut(name)
            .ok_or_else(|| unknown_cursor(name))?;
        let (skip, take) = motion(name, direction, cursor.position)?;
        // Rows to step over in all (taken or passed); `None`: to the end.
        let span = take.map(|take| skip.saturating_add(take));
        let column_count = cursor.shape.len();
        // Whether to step once more, having stepped `stepped` rows.
        let wants = move |stepped: u64| span.is_none_or(|span| stepped < span);
        let (mut stepped, mut returned, mut rows) = (0u64, 0u64, Vec::new());
        if wants(0) {
            if let Some((row, row_held)) = cursor.first_row.take() {
                stepped = 1;
                if stepped > skip {
                    returned += 1;
                    if !moves {
                        held.absorb(row_held);
                        rows.push(row);
                    }
                }
            }
        }
        if wants(stepped) && !cursor.exhausted {
            let more = cursor.statement.next_rows(|row| {
                stepped += 1;
                if stepped > skip {
                    returned += 1;
                    if !moves {
                        rows.push(copy_row(row, column_count, &mut held, invalid_text)?);
                    }
                }
                Ok(wants(stepped))
            });
            cursor.exhausted = !more?;
        }
        cursor.position += stepped;
        if moves {
            return Ok(no_rows(format!("MOVE {returned}")));
        }
        Ok(StatementResult {
            tag: format!("FETCH {returned}"),
            columns: Some(cursor.shape.columns(column_types, &[])),
            rows,
            held,
        })
    }
}

/// A motion from `position` (rows consumed so far) as rows to pass over
/// and rows then to return (`None`: all that remain); those that would go
/// back are refused.
fn motion(name: &str, direction: Direction, position: u64) -> Result<(u64, Option<u64>), SqlError> {
    let ahead = |row: i64| u64::try_from(row).ok().filter(|&row| row > position);
    match direction {
        Direction::Forward(take) => Ok((0, take)),
        Direction::Absolute(row) => match ahead(row) {
            Some(row) => Ok((row - position - 1, Some(1))),
            None => Err(forward_only(name)),
        },
        Direction::Relative(rows) if rows > 0 => Ok((rows.unsigned_abs() - 1, Some(1))),
        Direction::Relative(_) | Direction::Last | Direction::Backward => Err(forward_only(name)),
    }
}

fn forward_only(name: &str) -> SqlError {
    SqlError::new(
        sqlstate::FEATURE_NOT_SUPPORTED,
        format!(
            "cursor \"{name}\" can only move forward: PRIOR, BACKWARD, LAST, negative counts and \
             positions at or before the current row are not supported"
        ),
    )
}

fn unknown_cursor(name: &str) -> SqlError {
    SqlError::new(
        INVALID_CURSOR_NAME,
        format!("cursor \"{name}\" does not exist"),
    )
}

fn read_only_query_needed() -> SqlError {
    SqlError::new(
        sqlstate::FEATURE_NOT_SUPPORTED,
        "DECLARE CURSOR needs a query that only reads (SELECT or VALUES)",
    )
}
