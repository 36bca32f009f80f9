//! A session's worker: owns one libsql connection and runs the session's
//! requests on it in order. Here transaction state is tracked the
//! Postgres way (a failed statement poisons the transaction until
//! ROLLBACK), Postgres-only session commands are answered, and result
//! columns get their types.

use std::collections::HashMap;
use std::sync::Arc;

use libsql_sys::rusqlite::types::Value;
use libsql_sys::rusqlite::{Connection, Statement, TransactionState};

use crate::database::DbConnection;
use pgwire::api::Type;

use super::{ForwardStatement, SessionConfig, StatementGuard, Upstream};
use crate::database::{catalog_server_version, Database, DatabaseError};
use crate::error::{sqlstate, SqlError};
use crate::query::{
    Column, ExecuteMode, Outcome, PreparedStatement, Request, Response, StatementResult, TxnState,
};
use crate::sql::{self, SessionCommand, TxnControl};
use crate::types;

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
        let conn = session_connection(&db, &guard)?;
        Ok(Worker {
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
            forwarded: false,
            holds_write_gate: false,
            limits,
            txn: TxnState::Idle,
            settings: Settings::default(),
            prepared: HashMap::new(),
        })
    }

    /// Runs one request, then waits until its commits are durable.
    pub fn handle(&mut self, request: Request) -> Response {
        let outcome = match request {
            Request::Prepare { sql } => match self.prepare(&sql) {
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
            Ok(()) => outcome,
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

/// A session's libsql connection: statement cache sized, and stoppable by
/// its guard through SQLite's progress handler.
fn session_connection(
    db: &Database,
    guard: &Arc<StatementGuard>,
) -> Result<DbConnection, DatabaseError> {
    let conn = db.connect()?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    let guard = guard.clone();
    conn.progress_handler(PROGRESS_STEPS, Some(move || guard.should_stop()));
    Ok(conn)
}

pub struct Worker {
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
    /// Set when the statement just run went to the primary.
    forwarded: bool,
    /// This session may write: it holds the database's write gate until
    /// its transaction ends.
    holds_write_gate: bool,
    limits: SessionConfig,
    txn: TxnState,
    settings: Settings,
    /// Parse results by SQL text, valid while the schema version matches.
    prepared: HashMap<String, (i64, Arc<PreparedStatement>)>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.release_write_gate();
    }
}

impl Worker {
    fn prepare(&mut self, sql: &str) -> Result<Arc<PreparedStatement>, SqlError> {
        let pieces = sql::split_statements(sql);
        if pieces.len() > 1 {
            return Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        self.catch_up()?;
        let conn = describing_connection(&self.conn, &mut self.side, &self.db)?;
        let schema_version = schema_version(conn);
        let cached = self
            .prepared
            .get(sql)
            .filter(|(version, _)| *version == schema_version);
        if let Some((_, prepared)) = cached {
            return Ok(prepared.clone());
        }
        let prepared = Arc::new(describe(conn, sql)?);
        self.prepared
            .insert(sql.to_owned(), (schema_version, prepared.clone()));
        Ok(prepared)
    }

    fn execute(
        &mut self,
        sql: &str,
        params: &[Value],
        mode: ExecuteMode,
        column_types: Option<&[Type]>,
    ) -> Vec<Result<StatementResult, SqlError>> {
        let pieces = match mode {
            ExecuteMode::Batch => sql::split_statements(sql),
            ExecuteMode::Single => vec![sql],
        };
        // Like Postgres, several statements sent in one simple query run as
        // one implicit transaction, unless they manage transactions
        // themselves.
        let implicit_txn = pieces.len() > 1
            && self.txn == TxnState::Idle
            && self.conn.is_autocommit()
            && pieces.iter().all(|p| sql::txn_control(p).is_none());
        if implicit_txn {
            if let Err(e) = self.conn.execute_batch("BEGIN") {
                return vec![Err(e.into())];
            }
        }
        let mut results = Vec::with_capacity(pieces.len());
        for piece in pieces {
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
        results
    }

    fn release_write_gate(&mut self) {
        if std::mem::take(&mut self.holds_write_gate) {
            self.guard.end_write_transaction();
            self.db.write_gate().release();
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
    fn end_implicit_transaction(&mut self, results: &mut Vec<Result<StatementResult, SqlError>>) {
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
    fn poison_on_error(&mut self) {
        if self.limits.sqlite_api {
            self.sync_txn_state();
            return;
        }
        if self.txn != TxnState::Idle || !self.conn.is_autocommit() {
            self.txn = TxnState::Failed;
        }
    }

    fn sync_txn_state(&mut self) {
        self.txn = if self.conn.is_autocommit() {
            self.read_frame_no = None;
            TxnState::Idle
        } else {
            TxnState::Active
        };
    }

    /// On a replica, before a statement is prepared or run: waits until the
    /// session's last forwarded write has arrived (read-your-writes), and
    /// reopens the connection if the database was replaced meanwhile.
    fn catch_up(&mut self) -> Result<(), SqlError> {
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
    fn reopen_if_replaced(&mut self, upstream: &dyn Upstream) -> Result<(), SqlError> {
        let generation = upstream.generation();
        if generation != self.opened_in_generation && self.conn.is_autocommit() {
            self.conn = session_connection(&self.db, &self.guard)
                .map_err(|e| SqlError::new(sqlstate::IO_ERROR, e.to_string()))?;
            self.side = None;
            self.prepared.clear();
            self.opened_in_generation = generation;
        }
        Ok(())
    }

    /// A replica's first write of a statement or transaction: it goes to the
    /// primary. A local read transaction ends here, and the primary checks
    /// that what it read is still current (see `replication::remote`).
    fn forward_first_write(
        &mut self,
        upstream: &dyn Upstream,
        sql: &str,
        params: &[Value],
        column_types: Option<&[Type]>,
    ) -> Result<StatementResult, SqlError> {
        let begin_after_frame = if self.conn.is_autocommit() {
            None
        } else {
            let seen = self
                .read_frame_no
                .take()
                .unwrap_or_else(|| upstream.applied());
            let _ = self.conn.execute_batch("ROLLBACK");
            Some(seen)
        };
        self.forward(sql, params, column_types, begin_after_frame)
    }

    fn forward(
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
        self.forwarded = true;
        let forwarded = upstream.forward(ForwardStatement {
            session: self.remote.as_deref(),
            begin_after_frame,
            sql,
            params,
            column_types,
            sqlite_api: self.limits.sqlite_api,
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

    fn run_statement(
        &mut self,
        sql: &str,
        params: &[Value],
        column_types: Option<&[Type]>,
    ) -> Result<StatementResult, SqlError> {
        let control = sql::txn_control(sql);
        if self.remote.is_some() {
            return self.forward(sql, params, column_types, None);
        }
        if self.txn == TxnState::Failed {
            return self.run_in_failed_transaction(sql, control);
        }
        if let Some(cmd) = sql::session_command(sql) {
            return self.settings.apply(cmd);
        }
        if sql::is_vacuum_into(sql) {
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
        self.forwarded = false;
        let result = self.run_sqlite(sql, params, column_types);
        if std::mem::take(&mut self.forwarded) {
            return result;
        }
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

    /// BEGIN inside a transaction and COMMIT/ROLLBACK outside one are
    /// warnings in Postgres, not errors: answer them without SQLite.
    fn redundant_txn_control(&self, control: TxnControl) -> Option<&'static str> {
        let in_txn = !self.conn.is_autocommit();
        match control {
            TxnControl::Begin if in_txn => Some("BEGIN"),
            TxnControl::Commit if !in_txn => Some("COMMIT"),
            TxnControl::Rollback if !in_txn => Some("ROLLBACK"),
            _ => None,
        }
    }

    fn run_in_failed_transaction(
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

    fn run_sqlite(
        &mut self,
        sql: &str,
        params: &[Value],
        column_types: Option<&[Type]>,
    ) -> Result<StatementResult, SqlError> {
        let runnable = runnable_sql(sql);
        self.catch_up()?;
        let mut stmt = self.conn.prepare_cached(runnable)?;
        if let Some(upstream) = self.limits.upstream.clone() {
            if !stmt.readonly() {
                drop(stmt);
                return self.forward_first_write(upstream.as_ref(), sql, params, column_types);
            }
            if !self.conn.is_autocommit() && self.read_frame_no.is_none() {
                self.read_frame_no = Some(upstream.applied());
            }
        } else if !self.holds_write_gate && (!stmt.readonly() || sql::takes_write_lock(sql)) {
            take_write_gate(&self.db)?;
            self.holds_write_gate = true;
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
            let tag = sql::command_tag(sql, 0, changes, false);
            return Ok(no_rows(&self.with_rowid(tag)));
        }
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let declared: Vec<Option<Type>> = stmt
            .columns()
            .iter()
            .map(|c| c.decl_type().and_then(types::type_for_decltype))
            .collect();
        let mut rows = Vec::new();
        let mut bytes = 0usize;
        let mut cursor = stmt.raw_query();
        while let Some(row) = cursor.next()? {
            let mut values = Vec::with_capacity(column_count);
            for i in 0..column_count {
                let value: Value = row.get_ref(i)?.into();
                bytes += match &value {
                    Value::Text(s) => s.len(),
                    Value::Blob(b) => b.len(),
                    _ => 8,
                };
                values.push(value);
            }
            if bytes > self.limits.max_result_bytes {
                return Err(SqlError::new(
                    sqlstate::PROGRAM_LIMIT_EXCEEDED,
                    format!(
                        "result set exceeds the server's limit of {} bytes (--max-result-size)",
                        self.limits.max_result_bytes
                    ),
                ));
            }
            rows.push(values);
        }
        drop(cursor);
        drop(stmt);
        let changes = self.conn.changes();
        let columns = names
            .into_iter()
            .enumerate()
            .map(|(i, name)| {
                let ty = match column_types {
                    Some(types) if types.len() == column_count => types[i].clone(),
                    _ => declared[i]
                        .clone()
                        .unwrap_or_else(|| types::type_for_values(rows.iter().map(|r| &r[i]))),
                };
                Column { name, ty }
            })
            .collect();
        Ok(StatementResult {
            tag: self.with_rowid(sql::command_tag(sql, rows.len(), changes, true)),
            columns: Some(columns),
            rows,
        })
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

/// Before a session's first write in a transaction (or a BEGIN that takes
/// the write lock): queue for the database's write gate.
fn take_write_gate(db: &Database) -> Result<(), SqlError> {
    if db.write_gate().acquire(db.busy_timeout()) {
        Ok(())
    } else {
        Err(SqlError::new(
            sqlstate::LOCK_NOT_AVAILABLE,
            "could not obtain the database write lock within the busy timeout: another transaction is writing",
        ))
    }
}

fn schema_version(conn: &Connection) -> i64 {
    conn.query_row("PRAGMA schema_version", [], |r| r.get(0))
        .unwrap_or(-1)
}

fn describe(conn: &Connection, sql: &str) -> Result<PreparedStatement, SqlError> {
    let mut prepared = PreparedStatement {
        sql: sql.to_owned(),
        param_types: Vec::new(),
        columns: Vec::new(),
    };
    if let Some(cmd) = sql::session_command(sql) {
        if let SessionCommand::Show(name) = cmd {
            prepared.columns.push(Column {
                name: name.to_ascii_lowercase(),
                ty: Type::TEXT,
            });
        }
        return Ok(prepared);
    }
    let runnable = runnable_sql(sql);
    let mut stmt = conn.prepare(runnable)?;
    let count = stmt.parameter_count();
    let hints = sql::param_hints(sql);
    let decltypes = if hints.columns.is_empty() {
        HashMap::new()
    } else {
        column_decltypes(conn, sql)
    };
    let insert_columns = hints
        .insert_table
        .as_deref()
        .map(|t| table_decltypes(conn, t))
        .unwrap_or_default();
    for i in 1..=count {
        let number = param_number(&stmt, i);
        let ty = hints
            .types
            .get(&number)
            .and_then(|t| types::type_for_decltype(t))
            .or_else(|| {
                hints
                    .columns
                    .get(&number)
                    .and_then(|c| decltypes.get(c))
                    .and_then(|d| types::type_for_decltype(d))
            })
            .or_else(|| {
                hints
                    .positions
                    .get(&number)
                    .and_then(|k| insert_columns.get(*k))
                    .and_then(|(_, d)| types::type_for_decltype(d))
            })
            .unwrap_or(Type::TEXT);
        prepared.param_types.push(ty);
    }
    let declared: Vec<(String, Option<Type>)> = stmt
        .columns()
        .iter()
        .map(|c| {
            (
                c.name().to_owned(),
                c.decl_type().and_then(types::type_for_decltype),
            )
        })
        .collect();
    // Columns without a usable declared type (expressions) take the
    // type of the values a dry run returns, when the statement only
    // reads; otherwise text.
    let sampled = if declared.iter().any(|(_, t)| t.is_none()) && stmt.readonly() {
        dry_run(&mut stmt, count)
    } else {
        None
    };
    for (i, (name, ty)) in declared.into_iter().enumerate() {
        let ty = ty.unwrap_or_else(|| match &sampled {
            Some(row) => types::type_for_values(row.get(i).into_iter()),
            None => Type::TEXT,
        });
        prepared.columns.push(Column { name, ty });
    }
    Ok(prepared)
}

/// Declared types of the columns of the tables `sql` mentions, by
/// lower-cased column name.
fn column_decltypes(conn: &Connection, sql: &str) -> HashMap<String, String> {
    let words: std::collections::HashSet<String> = sql
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .map(|w| w.to_ascii_lowercase())
        .collect();
    let mut out = HashMap::new();
    let Ok(mut tables) = conn.prepare_cached(
        "SELECT name FROM main.sqlite_schema WHERE type = 'table'
         UNION ALL SELECT name FROM pg_catalog.sqlite_schema WHERE type = 'table'",
    ) else {
        return out;
    };
    let names: Vec<String> = tables
        .query_map([], |r| r.get(0))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default();
    for table in names
        .into_iter()
        .filter(|t| words.contains(&t.to_ascii_lowercase()))
    {
        for (name, ty) in table_decltypes(conn, &table) {
            out.entry(name.to_ascii_lowercase()).or_insert(ty);
        }
    }
    out
}

/// A table's columns in order, with their declared types.
fn table_decltypes(conn: &Connection, table: &str) -> Vec<(String, String)> {
    let Ok(mut info) = conn.prepare_cached("SELECT name, type FROM pragma_table_info(?1)") else {
        return Vec::new();
    };
    info.query_map([table], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })
    .map(|rows| rows.filter_map(Result::ok).collect())
    .unwrap_or_default()
}

/// The connection to describe statements on: the session's own, or, while
/// the session is in a transaction that has not read or written yet, the
/// side connection (opened on first need), which sees the same committed
/// schema without taking a snapshot for the session.
fn describing_connection<'a>(
    conn: &'a DbConnection,
    side: &'a mut Option<DbConnection>,
    db: &Database,
) -> Result<&'a Connection, SqlError> {
    let untouched_transaction =
        !conn.is_autocommit() && matches!(conn.transaction_state(None), Ok(TransactionState::None));
    if !untouched_transaction {
        return Ok(conn);
    }
    if side.is_none() {
        let opened = db
            .connect()
            .map_err(|e| SqlError::new(sqlstate::IO_ERROR, e.to_string()))?;
        *side = Some(opened);
    }
    Ok(side.as_ref().expect("side connection was just opened"))
}

/// The SQL handed to SQLite: Postgres-only spellings of transaction
/// control rewritten, everything else as sent.
fn runnable_sql(sql: &str) -> &str {
    sql::txn_control(sql)
        .and_then(|c| sql::rewrite_txn_control(sql, c))
        .unwrap_or(sql)
}

fn no_rows(tag: &str) -> StatementResult {
    StatementResult {
        tag: tag.to_owned(),
        columns: None,
        rows: Vec::new(),
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

/// Runs a read-only statement with NULL parameters and returns its first
/// row, to learn the storage classes of undeclared columns.
fn dry_run(stmt: &mut Statement<'_>, param_count: usize) -> Option<Vec<Value>> {
    for i in 1..=param_count {
        stmt.raw_bind_parameter(i, Value::Null).ok()?;
    }
    let column_count = stmt.column_count();
    let mut rows = stmt.raw_query();
    let row = rows.next().ok()??;
    (0..column_count)
        .map(|i| row.get_ref(i).ok().map(Value::from))
        .collect()
}

/// Per-session settings for SET and SHOW.
struct Settings {
    values: HashMap<String, String>,
}

impl Default for Settings {
    fn default() -> Self {
        let defaults = [
            ("server_version", catalog_server_version()),
            ("server_encoding", "UTF8".into()),
            ("client_encoding", "UTF8".into()),
            ("datestyle", "ISO, MDY".into()),
            ("timezone", "UTC".into()),
            ("integer_datetimes", "on".into()),
            ("standard_conforming_strings", "on".into()),
            ("transaction_isolation", "serializable".into()),
            ("default_transaction_isolation", "serializable".into()),
            ("transaction_read_only", "off".into()),
            ("search_path", "public".into()),
            ("application_name", String::new()),
            ("extra_float_digits", "1".into()),
            ("max_identifier_length", "63".into()),
            ("is_superuser", "on".into()),
            ("intervalstyle", "postgres".into()),
            ("lc_messages", "C".into()),
            ("statement_timeout", "0".into()),
        ];
        Settings {
            values: defaults
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        }
    }
}

impl Settings {
    fn apply(&mut self, cmd: SessionCommand) -> Result<StatementResult, SqlError> {
        match cmd {
            SessionCommand::Set { name, value } => {
                self.values.insert(name.to_ascii_lowercase(), value);
                Ok(no_rows("SET"))
            }
            SessionCommand::Reset(name) => {
                let name = name.to_ascii_lowercase();
                if name == "all" {
                    *self = Settings::default();
                } else if let Some(v) = Settings::default().values.remove(&name) {
                    self.values.insert(name, v);
                } else {
                    self.values.remove(&name);
                }
                Ok(no_rows("RESET"))
            }
            SessionCommand::Show(name) => {
                let key = name.to_ascii_lowercase();
                let value = self.values.get(&key).cloned().ok_or_else(|| {
                    SqlError::new(
                        "42704",
                        format!("unrecognized configuration parameter \"{name}\""),
                    )
                })?;
                Ok(StatementResult {
                    tag: "SHOW".into(),
                    columns: Some(vec![Column {
                        name: key,
                        ty: Type::TEXT,
                    }]),
                    rows: vec![vec![Value::Text(value)]],
                })
            }
            SessionCommand::NoOp(tag) => Ok(no_rows(tag)),
        }
    }
}
