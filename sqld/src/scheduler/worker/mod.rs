//! A session's worker: owns one libsql connection and runs the session's
//! requests on it in order, on the connection's own thread. This module
//! runs statements and shapes their results (with result limits and
//! column types); beside it, `txn` keeps the Postgres transaction state
//! machine and the write gate, `routing` sends a replica's writes to the
//! primary, `describe` answers Parse, `settings` answers SET and SHOW,
//! `cursors` runs DECLARE/FETCH (on `live_statement`s) and
//! `named_statements` runs PREPARE/EXECUTE.

mod advisory;
mod cursors;
mod describe;
mod live_statement;
mod named_statements;
mod routing;
mod settings;
mod txn;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use libsql_sys::rusqlite::types::Value;
use libsql_sys::rusqlite::{Row, Statement};
use pgwire::api::Type;

use super::{SessionConfig, StatementGuard};
use crate::database::{
    limit_value_size, prepare_with_current_schema, Database, DatabaseError, DbConnection,
    WriteGateHeld,
};
use crate::error::{sqlstate, SqlError};
use crate::memory::{self, Held, ResultMemory};
use crate::query::{
    Column, ExecuteMode, Outcome, PreparedStatement, Request, Response, StatementResult, TxnState,
};
use crate::sql::{self, TxnControl};
use crate::types;
use advisory::AdvisoryLocks;
use cursors::Cursors;
use named_statements::NamedStatements;
use settings::Settings;
use txn::{take_write_gate, write_refusal};

/// Statements kept prepared per session (rusqlite's statement cache).
const STATEMENT_CACHE_CAPACITY: usize = 128;
/// How often (in SQLite virtual-machine steps) a running statement checks
/// whether it must stop.
const PROGRESS_STEPS: i32 = 1000;

impl Worker {
    pub fn new(
        db: Database,
        limits: SessionConfig,
        guard: Arc<StatementGuard>,
    ) -> Result<Self, DatabaseError> {
        let conn = session_connection(&db, &guard, limits.max_result_bytes)?;
        let settings = Settings::new(limits.statement_timeout);
        let advisory_locks = AdvisoryLocks::new();
        install_session_functions(&conn, &settings, &advisory_locks, &guard)
            .map_err(|e| db.open_error(e))?;
        if let Some(activity) = &limits.activity {
            install_backend_pid(&conn, activity.identity.pid).map_err(|e| db.open_error(e))?;
        }
        Ok(Worker {
            cursors: Cursors::default(),
            named_statements: NamedStatements::default(),
            conn,
            db,
            side: None,
            opened_in_generation: limits
                .upstream
                .as_ref()
                .map(|u| u.generation())
                .unwrap_or(0),
            guard,
            remote: None,
            read_frame_no: None,
            min_read_frame: 0,
            write_gate: None,
            wrote: false,
            result_memory: ResultMemory::new(limits.max_result_bytes),
            settings,
            advisory_locks,
            limits,
            txn: TxnState::Idle,
            prepared: HashMap::new(),
        })
    }

    /// The session's `statement_timeout` (SET, else the server's).
    pub fn statement_timeout(&self) -> Option<std::time::Duration> {
        self.settings.statement_timeout()
    }

    /// Runs one request, then waits until its commits are durable.
    pub fn handle(&mut self, request: Request) -> Response {
        let outcome = match request {
            Request::Prepare { sql } => match self.describe_statement(&sql) {
                Ok(p) => Outcome::Prepared(p),
                Err(e) => Outcome::Executed(vec![Err(e)]),
            },
            Request::Execute {
                sql,
                params,
                mode,
                column_types,
            } => Outcome::Executed(self.execute(&sql, &params, mode, column_types.as_deref())),
        };
        // Group commit: the reply waits until this session's commits (and
        // any others' made meanwhile) are durable in the replication log.
        let outcome = match self.db.sync_log() {
            Ok(()) => match self.wait_for_replicas() {
                Ok(()) => outcome,
                Err(e) => Outcome::Executed(vec![Err(e)]),
            },
            Err(e) => {
                tracing::error!(error = %e, "replication log sync failed");
                Outcome::Executed(vec![Err(SqlError::new(
                    sqlstate::IO_ERROR,
                    format!("the commit could not be made durable in the replication log: {e}"),
                ))])
            }
        };
        Response {
            outcome,
            txn: self.txn,
        }
    }
}

/// A session's libsql connection: statement cache sized, stoppable by its
/// guard through SQLite's progress handler, and with no single value
/// larger than the session's whole result budget (SQLite refuses to make
/// one, rather than materialise it for the budget to refuse).
fn session_connection(
    db: &Database,
    guard: &Arc<StatementGuard>,
    max_result_bytes: usize,
) -> Result<DbConnection, DatabaseError> {
    let conn = db.connect()?;
    limit_value_size(&conn, max_result_bytes);
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    // The guard only reads flags and deadlines: a panic inside it (which
    // rusqlite catches) cannot leave it half-changed.
    let guard = std::panic::AssertUnwindSafe(guard.clone());
    conn.progress_handler(PROGRESS_STEPS, Some(move || guard.should_stop()));
    Ok(conn)
}

/// The SQL functions whose answers are the session's own: its settings
/// and its advisory locks.
fn install_session_functions(
    conn: &DbConnection,
    settings: &Settings,
    advisory_locks: &AdvisoryLocks,
    guard: &Arc<StatementGuard>,
) -> libsql_sys::rusqlite::Result<()> {
    settings.install_functions(conn)?;
    advisory_locks.install(conn, guard)
}

/// `pg_backend_pid()` answers the session's pid (its BackendKeyData's, and
/// its row's in `pg_stat_activity`) rather than the server process's.
fn install_backend_pid(conn: &DbConnection, pid: i32) -> libsql_sys::rusqlite::Result<()> {
    let flags = libsql_sys::rusqlite::functions::FunctionFlags::SQLITE_UTF8
        | libsql_sys::rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("pg_backend_pid", 0, flags, move |_| Ok(i64::from(pid)))
}

pub struct Worker {
    /// Declared before `conn`, so dropped first: their statements are
    /// open on it (and their view of it must go before it closes).
    cursors: Cursors,
    conn: DbConnection,
    db: Database,
    /// A second connection for describing statements while the session is
    /// in a transaction that has not touched the database yet. Reading the
    /// schema on the session's own connection would take a read snapshot,
    /// and a snapshot cannot wait for the write lock: a concurrent writer
    /// would make the transaction fail at its first write instead of wait.
    side: Option<DbConnection>,
    /// On a replica: the database generation (see `ReplicaStatus`) the
    /// connection was opened in.
    opened_in_generation: u64,
    /// Says when the running statement must stop (timeout, cancel).
    guard: Arc<StatementGuard>,
    /// The primary's session for a transaction that has written, while it
    /// stays open: every statement goes there.
    remote: Option<String>,
    /// The frame the replica had applied when the open local transaction
    /// first read (what its reads saw, at most).
    read_frame_no: Option<u64>,
    /// Read-your-writes: reads wait until the replica has applied this.
    min_read_frame: u64,
    /// Held while this session may write: from its transaction's first
    /// write until the transaction ends.
    write_gate: Option<WriteGateHeld>,
    /// A transaction of this request wrote and ended: the reply waits for
    /// synchronous replicas.
    wrote: bool,
    limits: SessionConfig,
    /// What this session's result rows may hold, wherever they are.
    result_memory: ResultMemory,
    txn: TxnState,
    settings: Settings,
    /// The advisory locks this session holds, released when it ends.
    advisory_locks: AdvisoryLocks,
    /// Parse results by SQL text, valid while the schema version matches.
    prepared: HashMap<String, (i64, Arc<PreparedStatement>)>,
    /// SQL-level prepared statements (PREPARE), by name.
    named_statements: NamedStatements,
}

impl Worker {
    fn execute(
        &mut self,
        sql: &str,
        params: &[Value],
        mode: ExecuteMode,
        column_types: Option<&[Type]>,
    ) -> Vec<Result<StatementResult, SqlError>> {
        let pieces: Vec<sql::Statement> = match mode {
            ExecuteMode::Batch => sql::split_statements(sql),
            ExecuteMode::Single => vec![sql],
        }
        .into_iter()
        .map(sql::Statement::classify)
        .collect();
        // Like Postgres, several statements sent in one simple query run as
        // one implicit transaction, unless they manage transactions
        // themselves.
        let implicit_txn = pieces.len() > 1
            && self.txn == TxnState::Idle
            && self.conn.is_autocommit()
            && pieces.iter().all(|p| p.control.is_none());
        if implicit_txn {
            if let Err(e) = self.conn.execute_batch("BEGIN") {
                return vec![Err(e.into())];
            }
        }
        let mut results = Vec::with_capacity(pieces.len());
        for piece in &pieces {
            if self.guard.should_stop() {
                self.poison_on_error();
                results.push(Err(SqlError::canceled()));
                break;
            }
            let result = self.run_statement(piece, params, column_types);
            let failed = result.is_err();
            results.push(result);
            if failed {
                break;
            }
        }
        if implicit_txn {
            self.end_implicit_transaction(&mut results);
        }
        if self.conn.is_autocommit() {
            self.release_write_gate();
        }
        // rusqlite's cache is bounded in statements, not bytes.
        if !describe::cacheable(sql) {
            self.conn.flush_prepared_statement_cache();
        }
        results
    }

    fn run_statement(
        &mut self,
        statement: &sql::Statement,
        params: &[Value],
        column_types: Option<&[Type]>,
    ) -> Result<StatementResult, SqlError> {
        let control = statement.control;
        // A transaction's cursors end with it, before SQLite ends it.
        if matches!(control, Some(TxnControl::Commit | TxnControl::Rollback)) {
            self.cursors.close_all();
        }
        // The session's own, on a replica too: EXECUTE runs (or forwards)
        // the statement it names.
        if let Some(command) = &statement.prepared {
            return self.run_prepared_command(command, params, column_types);
        }
        if self.remote.is_some() {
            return self.forward(statement.text, params, column_types, None);
        }
        if self.txn == TxnState::Failed {
            return self.run_in_failed_transaction(&statement.runnable, control);
        }
        if let Some(cmd) = &statement.session {
            return self.settings.apply(cmd.clone());
        }
        if let Some(command) = &statement.cursor {
            return self.run_cursor_command(command, params, column_types);
        }
        if statement.vacuum_into {
            return Err(SqlError::new(
                sqlstate::INSUFFICIENT_PRIVILEGE,
                "not authorized: VACUUM INTO writes to the server's file system",
            ));
        }
        if let Some(control) = control {
            if let Some(tag) = self.redundant_txn_control(control) {
                return Ok(no_rows(tag));
            }
        }
        let result = match self.must_forward(&statement.runnable) {
            // The primary's answer sets the transaction state.
            Ok(true) => return self.forward_first_write(statement.text, params, column_types),
            Ok(false) => self
                .run_here(statement, params, column_types)
                // The log refused the commit: say why.
                .map_err(|e| match e.code {
                    sqlstate::IO_ERROR => write_refusal(&self.db).unwrap_or(e),
                    _ => e,
                }),
            Err(e) => Err(e),
        };
        match (&result, control) {
            (Err(_), Some(TxnControl::Commit)) if !self.limits.sqlite_api => {
                // A failed COMMIT ends the transaction in Postgres.
                let _ = self.conn.execute_batch("ROLLBACK");
                self.txn = TxnState::Idle;
            }
            (Err(_), _) => self.poison_on_error(),
            (Ok(_), _) => self.sync_txn_state(),
        }
        result
    }

    /// With `--synchronous-replicas`, a request whose transaction wrote is
    /// answered once that many replicas hold the log up to now (which
    /// covers its commit), unless the session turned synchronous_commit off.
    fn wait_for_replicas(&mut self) -> Result<(), SqlError> {
        if !std::mem::take(&mut self.wrote) || !self.settings.synchronous_commit() {
            return Ok(());
        }
        let Some(log) = self.db.log() else {
            return Ok(());
        };
        let replicas = log.sync_replicas();
        if replicas.required() == 0 {
            return Ok(());
        }
        let metrics = self.db.metrics();
        metrics.sync_commits_waiting.inc();
        let started = std::time::Instant::now();
        let waited = replicas.wait(log.appended_frame_no());
        metrics.sync_commits_waiting.dec();
        metrics
            .sync_commit_wait
            .observe(started.elapsed().as_secs_f64());
        waited.map_err(|unconfirmed| {
            metrics.sync_commit_timeouts.inc();
            SqlError::new(
                sqlstate::QUERY_CANCELED,
                format!(
                    "canceling the wait for synchronous replication after {:?}: {} of {} replicas hold the commit. \
                     It is committed on the primary but may be lost if the primary fails now",
                    unconfirmed.waited, unconfirmed.holding, unconfirmed.required
                ),
            )
        })
    }

    /// Runs a statement on this session's own connection.
    fn run_here(
        &mut self,
        statement: &sql::Statement,
        params: &[Value],
        column_types: Option<&[Type]>,
    ) -> Result<StatementResult, SqlError> {
        self.db.ensure_catalog(&self.conn, &statement.runnable)?;
        let mut stmt = prepare_with_current_schema(&self.conn, || {
            self.conn.prepare_cached(&statement.runnable)
        })?;
        if self.limits.upstream.is_none()
            && self.write_gate.is_none()
            && (!stmt.readonly() || statement.takes_write_lock)
        {
            self.write_gate = Some(take_write_gate(&self.db, self.guard.remaining())?);
            // Canceled while it queued: a statement too short for the
            // progress handler to look would otherwise still run.
            if self.guard.should_stop() {
                return Err(SqlError::canceled());
            }
            self.guard.limit_write_transaction(
                self.limits
                    .write_transaction_timeout
                    .map(|limit| std::time::Instant::now() + limit),
            );
        }
        bind_params(&mut stmt, params)?;
        let column_count = stmt.column_count();
        if column_count == 0 {
            stmt.raw_execute()?;
            drop(stmt);
            let changes = self.conn.changes();
            let tag = statement.tag(0, changes, false);
            return Ok(no_rows(self.with_rowid(tag)));
        }
        let mut shape =
            ResultShape::of(&stmt).named(|name| self.column_name(name, &statement.runnable));
        let invalid_text = self.invalid_text();
        let mut rows = Vec::new();
        let mut held = self.result_memory.charge();
        let mut cursor = stmt.raw_query();
        while let Some(row) = cursor.next()? {
            rows.push(copy_row(row, column_count, &mut held, invalid_text)?);
        }
        drop(cursor);
        drop(stmt);
        let changes = self.conn.changes();
        // A statement the compatibility layer rewrote may hold casts whose
        // type its values do not show (`x::int4`, `'t'::boolean`): its
        // expressions say, at the price of a parse it has paid once already.
        if let (None, Cow::Owned(sql)) = (&column_types, &statement.runnable) {
            if shape.declared.iter().any(Option::is_none) {
                if let Some(inferred) = describe::infer_types(&self.conn, sql, HashMap::new()) {
                    shape.computed = inferred.columns;
                }
            }
        }
        let columns = shape.columns(column_types, &rows);
        Ok(StatementResult {
            tag: self.with_rowid(statement.tag(rows.len(), changes, true)),
            columns: Some(columns),
            rows,
            held,
        })
    }

    fn column_name(&self, name: &str, sql: &str) -> String {
        column_name(self.limits.sqlite_api, name, sql)
    }

    /// Parse: the commands sqld runs itself are described here, the rest
    /// by SQLite (`describe`).
    fn describe_statement(&mut self, sql: &str) -> Result<Arc<PreparedStatement>, SqlError> {
        let statement = sql::Statement::classify(sql);
        match (&statement.cursor, &statement.prepared) {
            (Some(command), _) => self.describe_cursor_command(sql, command.clone()?),
            (_, Some(command)) => self.describe_prepared_command(sql, command.clone()?),
            _ => self.prepare(sql),
        }
    }

    /// What a text value that is not UTF-8 becomes: the SQLite API dialect
    /// takes it as bytes, Postgres refuses it.
    fn invalid_text(&self) -> types::InvalidText {
        match self.limits.sqlite_api {
            true => types::InvalidText::AsBytes,
            false => types::InvalidText::Refuse,
        }
    }

    /// For the SQLite API dialect, `INSERT 0 n` becomes `INSERT rowid n`:
    /// the client learns `sqlite3_last_insert_rowid` without asking.
    fn with_rowid(&self, tag: String) -> String {
        match tag.strip_prefix("INSERT 0 ") {
            Some(count) if self.limits.sqlite_api => {
                format!("INSERT {} {count}", self.conn.last_insert_rowid())
            }
            _ => tag,
        }
    }
}

fn no_rows(tag: impl Into<String>) -> StatementResult {
    StatementResult::no_rows(tag)
}

/// Copies one row out of SQLite, counted in the session's budget before
/// each copy: a row too many is refused, not held.
fn copy_row(
    row: &Row<'_>,
    column_count: usize,
    held: &mut Held,
    invalid_text: types::InvalidText,
) -> Result<Vec<Value>, SqlError> {
    held.add(memory::row_cost(column_count))?;
    let mut values = Vec::with_capacity(column_count);
    for i in 0..column_count {
        let value = row.get_ref(i)?;
        held.add(memory::value_cost(&value))?;
        values.push(types::owned_value(value, invalid_text)?);
    }
    Ok(values)
}

/// A statement's result columns as SQLite knows them before it runs:
/// their names and declared types.
struct ResultShape {
    names: Vec<String>,
    declared: Vec<Option<Type>>,
    /// What the expressions say of columns without a declared type, where
    /// they were read (`typing`).
    computed: Vec<Option<Type>>,
}

impl ResultShape {
    fn of(stmt: &Statement<'_>) -> Self {
        ResultShape {
            names: stmt.column_names().iter().map(|s| s.to_string()).collect(),
            declared: stmt
                .columns()
                .iter()
                .map(|c| c.decl_type().and_then(types::type_for_decltype))
                .collect(),
            computed: Vec::new(),
        }
    }

    /// This shape with its columns renamed by `name`.
    fn named(mut self, name: impl Fn(&str) -> String) -> Self {
        for n in &mut self.names {
            *n = name(n);
        }
        self
    }

    fn len(&self) -> usize {
        self.names.len()
    }

    /// The columns as the client is told them: with the types given at
    /// Describe (when there is one for each), else the declared ones, else
    /// the type of the values in `rows`.
    fn columns(&self, given: Option<&[Type]>, rows: &[Vec<Value>]) -> Vec<Column> {
        let count = self.len();
        self.names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let ty = match given {
                    Some(types) if types.len() == count => types[i].clone(),
                    _ => self.declared[i]
                        .clone()
                        .or_else(|| self.computed.get(i).cloned().flatten())
                        .unwrap_or_else(|| types::type_for_values(rows.iter().map(|r| &r[i]))),
                };
                Column {
                    name: name.clone(),
                    ty,
                }
            })
            .collect()
    }

    /// This shape with the undeclared types taken from the values in `rows`.
    fn typed_by(self, rows: &[Vec<Value>]) -> Self {
        let declared = self
            .columns(None, rows)
            .into_iter()
            .map(|c| Some(c.ty))
            .collect();
        ResultShape { declared, ..self }
    }
}

/// The Postgres parameter number of SQLite parameter `index`: `$n` (or
/// `?n`) names its number; anonymous `?` parameters count in order.
fn param_number(stmt: &Statement<'_>, index: usize) -> usize {
    stmt.parameter_name(index)
        .and_then(|name| name.strip_prefix(['$', '?']))
        .and_then(|n| n.parse().ok())
        .unwrap_or(index)
}

/// Binds Postgres parameters (`$1` is `params[0]`) by name, so `$2 ... $1`
/// works; anonymous parameters bind by position.
fn bind_params(stmt: &mut Statement<'_>, params: &[Value]) -> Result<(), SqlError> {
    let count = stmt.parameter_count();
    let mut bound = 0;
    for index in 1..=count {
        let number = param_number(stmt, index);
        let value = params.get(number - 1).ok_or_else(|| {
            SqlError::new(
                sqlstate::PROTOCOL_VIOLATION,
                format!(
                    "bind message supplies {} parameters, but prepared statement requires {}",
                    params.len(),
                    count
                ),
            )
        })?;
        stmt.raw_bind_parameter(index, value)?;
        bound = bound.max(number);
    }
    if bound < params.len() && count == 0 {
        return Err(SqlError::new(
            sqlstate::PROTOCOL_VIOLATION,
            format!(
                "bind message supplies {} parameters, but prepared statement requires 0",
                params.len()
            ),
        ));
    }
    Ok(())
}

/// A result column's name: as Postgres names it, except for the SQLite API
/// dialect, whose callers expect SQLite's (`count(*)`).
pub(super) fn column_name(sqlite_api: bool, name: &str, sql: &str) -> String {
    match sqlite_api {
        true => name.to_owned(),
        false => sql::postgres_column_name(name, sql).unwrap_or_else(|| name.to_owned()),
    }
}
