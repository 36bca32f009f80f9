//! Describe: what Parse learns about a statement before it runs, its
//! parameters' types (inferred from the columns they meet) and its result
//! columns' types (declared, or from a dry run's first row).

use std::collections::HashMap;
use std::sync::Arc;

use libsql_sys::rusqlite::types::Value;
use libsql_sys::rusqlite::{Connection, Statement, TransactionState};
use pgwire::api::Type;

use super::settings::SHOW_ALL_COLUMNS;
use super::{column_name, install_session_functions, param_number, Worker};
use crate::database::{prepare_with_current_schema, Database, DbConnection};
use crate::error::{sqlstate, SqlError};
use crate::query::{Column, PreparedStatement};
use crate::sql::{self, SessionCommand};
use crate::{types, typing};

impl Worker {
    pub(super) fn prepare(&mut self, sql: &str) -> Result<Arc<PreparedStatement>, SqlError> {
        let pieces = sql::split_statements(sql);
        if pieces.len() > 1 {
            return Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        self.catch_up()?;
        let conn = describing_connection(&self.conn, &mut self.side, &self.db, |side| {
            install_session_functions(side, &self.settings, &self.advisory_locks, &self.guard)
        })?;
        self.db.ensure_catalog(conn, sql)?;
        let schema_version = schema_version(conn);
        let cached = self
            .prepared
            .get(sql)
            .filter(|(version, _)| *version == schema_version);
        if let Some((_, prepared)) = cached {
            return Ok(prepared.clone());
        }
        let sqlite_api = self.limits.sqlite_api;
        let prepared = Arc::new(describe(conn, sql, |name, sql| {
            column_name(sqlite_api, name, sql)
        })?);
        if cacheable(sql) {
            if self.prepared.len() >= MAX_CACHED_DESCRIPTIONS {
                self.prepared.clear();
            }
            self.prepared
                .insert(sql.to_owned(), (schema_version, prepared.clone()));
        }
        Ok(prepared)
    }
}

/// Descriptions kept per session, and the longest SQL whose description is
/// kept: the cache holds the SQL twice (key and statement), so without
/// bounds distinct Parse messages would grow it for the session's
/// lifetime (40 of 8 MB held 640 MB). Together at most 8 MiB per session.
const MAX_CACHED_DESCRIPTIONS: usize = 256;
const MAX_CACHED_SQL: usize = 16 * 1024;

/// Whether statements of this SQL are kept for reuse (here, and in
/// rusqlite's statement cache: see `Worker::execute`).
pub(super) fn cacheable(sql: &str) -> bool {
    sql.len() <= MAX_CACHED_SQL
}

fn schema_version(conn: &Connection) -> i64 {
    conn.query_row("PRAGMA schema_version", [], |r| r.get(0))
        .unwrap_or(-1)
}

fn describe(
    conn: &Connection,
    sql: &str,
    column_name: impl Fn(&str, &str) -> String,
) -> Result<PreparedStatement, SqlError> {
    let mut prepared = PreparedStatement {
        sql: sql.to_owned(),
        param_types: Vec::new(),
        columns: Vec::new(),
    };
    let statement = sql::Statement::classify(sql);
    if let Some(cmd) = statement.session {
        if let SessionCommand::Show(name) = cmd {
            let names = match name.as_str() {
                "all" => SHOW_ALL_COLUMNS.iter().map(|n| n.to_string()).collect(),
                _ => vec![name.to_ascii_lowercase()],
            };
            prepared
                .columns
                .extend(names.into_iter().map(|name| Column {
                    name,
                    ty: Type::TEXT,
                }));
        }
        return Ok(prepared);
    }
    let mut stmt = prepare_with_current_schema(conn, || conn.prepare(&statement.runnable))?;
    let count = stmt.parameter_count();
    let hints = sql::param_hints(&statement.runnable);
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
    let mut untyped = Vec::new();
    let mut known = HashMap::new();
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
            });
        match &ty {
            Some(ty) => known.insert(number, ty.clone()),
            None => {
                untyped.push((i - 1, number));
                None
            }
        };
        prepared.param_types.push(ty.unwrap_or(Type::TEXT));
    }
    let declared: Vec<(String, Option<Type>)> = stmt
        .columns()
        .iter()
        .map(|c| {
            (
                column_name(c.name(), &statement.runnable),
                c.decl_type().and_then(types::type_for_decltype),
            )
        })
        .collect();
    // What the cheap hints and the declarations leave untyped, the
    // expressions may type (parsed only then).
    let inferred = if !untyped.is_empty() || declared.iter().any(|(_, t)| t.is_none()) {
        infer_types(conn, &statement.runnable, known)
    } else {
        None
    };
    if let Some(inferred) = &inferred {
        for &(index, number) in &untyped {
            if let Some(ty) = inferred.params.get(&number) {
                prepared.param_types[index] = ty.clone();
            }
        }
    }
    let computed = |i: usize| {
        inferred
            .as_ref()
            .and_then(|t| t.columns.get(i).cloned().flatten())
    };
    // Columns neither declared nor typed by their expression take the
    // type of the values a dry run returns, when the statement only
    // reads; otherwise text.
    let sampled = if declared
        .iter()
        .enumerate()
        .any(|(i, (_, t))| t.is_none() && computed(i).is_none())
        && stmt.readonly()
    {
        dry_run(&mut stmt, count)
    } else {
        None
    };
    for (i, (name, ty)) in declared.into_iter().enumerate() {
        let ty = ty
            .or_else(|| computed(i))
            .unwrap_or_else(|| match &sampled {
                Some(row) => types::type_for_values(row.get(i).into_iter()),
                None => Type::TEXT,
            });
        prepared.columns.push(Column { name, ty });
    }
    Ok(prepared)
}

/// Types from the statement's expressions, with columns resolved against
/// the tables it names and the parameters the hints typed (`known`) as
/// they are.
pub(super) fn infer_types(
    conn: &Connection,
    sql: &str,
    known: HashMap<usize, Type>,
) -> Option<typing::Inferred> {
    let decltypes = column_decltypes(conn, sql);
    let column = |name: &str| {
        decltypes
            .get(name)
            .and_then(|d| types::type_for_decltype(d))
    };
    typing::infer(sql, &column, known)
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
    install: impl FnOnce(&DbConnection) -> libsql_sys::rusqlite::Result<()>,
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
        install(&opened)?;
        *side = Some(opened);
    }
    Ok(side.as_ref().expect("side connection was just opened"))
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
        .map(|i| {
            let value = row.get_ref(i).ok()?;
            types::owned_value(value, types::InvalidText::AsBytes).ok()
        })
        .collect()
}
