//! The sandbox: SQL from clients must not reach the server's file system
//! or process. Enforced by the SQLite authorizer on every statement, so it
//! holds however the SQL is spelled; a denied statement fails with
//! SQLITE_AUTH, which becomes SQLSTATE 42501, and the session goes on.
//!
//! It is a whitelist: every kind of action SQLite asks about is allowed or
//! denied by name here, and anything it asks that this module does not
//! know (a code a newer SQLite adds, or an action whose argument is not a
//! literal, such as `ATTACH 'x' || '' AS y`, which reaches the authorizer
//! with no filename at all) is denied. The authorizer also runs when a
//! trigger or view is compiled into another session's statement, so one
//! that calls a denied function fails there too.

use libsql_sys::rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use libsql_sys::rusqlite::{Connection, Error};

use crate::error::{sqlstate, sqlstate_for};

/// PRAGMAs a client may run. Those not listed either touch files, change
/// durability or locking, or weaken integrity checks, and are denied.
const ALLOWED_PRAGMAS: &[&str] = &[
    "application_id",
    "case_sensitive_like",
    "collation_list",
    "compile_options",
    "data_version",
    "database_list",
    "defer_foreign_keys",
    "encoding",
    "foreign_key_check",
    "foreign_key_list",
    "foreign_keys",
    "freelist_count",
    "function_list",
    "index_info",
    "index_list",
    "index_xinfo",
    "integrity_check",
    "module_list",
    "optimize",
    "page_count",
    "page_size",
    "pragma_list",
    "quick_check",
    "recursive_triggers",
    "schema_version",
    "table_info",
    "table_list",
    "table_xinfo",
    "user_version",
];

/// PRAGMAs a client may read but not set.
const READ_ONLY_PRAGMAS: &[&str] = &["page_size", "schema_version", "encoding"];

/// Databases a client may not detach.
const PROTECTED_DATABASES: &[&str] = &["main", "temp", "pg_catalog", "information_schema"];

/// SQL functions that reach outside the database, or take raw pointers
/// (`fts3_tokenizer` with two arguments registers a tokenizer from one).
const DENIED_FUNCTIONS: &[&str] = &[
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
    "lsdir",
];

/// Virtual-table modules a client may create tables with: full-text search
/// and R-trees keep their data in ordinary tables of the same database.
const ALLOWED_MODULES: &[&str] = &[
    "fts3",
    "fts3tokenize",
    "fts4",
    "fts4aux",
    "fts5",
    "fts5vocab",
    "rtree",
    "rtree_i32",
    "geopoly",
];

/// Tables whose rows are the database's raw pages or the file system
/// (eponymous virtual tables, read and written without CREATE).
const DENIED_TABLES: &[&str] = &[
    "sqlite_dbpage",
    "sqlite_dbdata",
    "sqlite_dbptr",
    "fsdir",
    "zipfile",
];

/// The compatibility catalogs are sqld's, not the client's to change...
const CATALOG_DATABASES: &[&str] = &["pg_catalog", "information_schema"];
/// ...but for the planner's statistics, which ANALYZE and `PRAGMA optimize`
/// (run on every attached database) write there. The catalog lives in
/// the session's memory, so they change only that session's query plans.
const STAT_TABLES: &[&str] = &["sqlite_stat1", "sqlite_stat4"];

/// Largest string or blob one value may be (SQLite's SQLITE_LIMIT_LENGTH,
/// 1 GB by default): `randomblob`, `zeroblob`, `printf` widths and
/// concatenation fail with 54000 past it instead of taking the server's
/// memory. It matches the largest result set kept by default.
pub const MAX_VALUE_BYTES: i32 = 256 * 1024 * 1024;
/// Longest SQL text SQLite will compile (the default max message size).
const MAX_SQL_BYTES: i32 = 64 * 1024 * 1024;

pub fn install(conn: &Connection) {
    conn.authorizer(Some(authorize));
    lower_limit(conn, libsql_sys::ffi::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES);
    lower_limit(
        conn,
        libsql_sys::ffi::SQLITE_LIMIT_SQL_LENGTH,
        MAX_SQL_BYTES,
    );
}

/// Lowers the largest value `conn` may make to `max_bytes` (a session's
/// result budget), if that is below the sandbox's.
pub fn limit_value_size(conn: &Connection, max_bytes: usize) {
    let max = i32::try_from(max_bytes).unwrap_or(i32::MAX);
    lower_limit(conn, libsql_sys::ffi::SQLITE_LIMIT_LENGTH, max);
}

/// Sets a per-connection limit to `value`, unless it is already lower.
fn lower_limit(conn: &Connection, limit: i32, value: i32) {
    // SAFETY: the handle is the live connection's; sqlite3_limit with -1
    // only reads, and the value set is never above the current one.
    unsafe {
        let db = conn.handle();
        let current = libsql_sys::ffi::sqlite3_limit(db, limit, -1);
        libsql_sys::ffi::sqlite3_limit(db, limit, current.min(value));
    }
}

/// Runs `f` with the authorizer off: for sqld's own statements on a
/// session's connection (building the catalog the sandbox protects), never
/// for a client's.
pub fn suspended<T>(conn: &Connection, f: impl FnOnce() -> T) -> T {
    conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    let result = f();
    conn.authorizer(Some(authorize));
    result
}

/// Prepares a statement with `prepare` and, if the sandbox denied it, once
/// more against the current schema. SQLite compiles triggers and views
/// into a statement from the connection's copy of the schema, and checks
/// that copy only when a statement runs, not when a prepare fails: without
/// this, a session kept being denied a trigger another session had
/// dropped. (SQLite itself does the same after "no such table".)
pub fn prepare_with_current_schema<T>(
    conn: &Connection,
    mut prepare: impl FnMut() -> libsql_sys::rusqlite::Result<T>,
) -> libsql_sys::rusqlite::Result<T> {
    match prepare() {
        Err(e) if is_denial(&e) => {
            // Reading the schema table notices a changed schema cookie, and
            // SQLite then reloads the schema.
            match conn.query_row("SELECT count(*) FROM main.sqlite_schema", [], |_| Ok(())) {
                Ok(()) => prepare(),
                Err(_) => Err(e),
            }
        }
        other => other,
    }
}

/// A statement refused by the sandbox (or by SQLite's own distrust of
/// functions in the schema): mostly SQLITE_ERROR with a message.
fn is_denial(e: &Error) -> bool {
    let (code, message) = match e {
        Error::SqliteFailure(err, message) => (err.extended_code, message.as_deref()),
        Error::SqlInputError { error, msg, .. } => (error.extended_code, Some(msg.as_str())),
        _ => return false,
    };
    sqlstate_for(code, message.unwrap_or_default()) == sqlstate::INSUFFICIENT_PRIVILEGE
}

fn named(list: &[&str], name: &str) -> bool {
    list.iter().any(|n| n.eq_ignore_ascii_case(name))
}

fn allow_if(allowed: bool) -> Authorization {
    if allowed {
        Authorization::Allow
    } else {
        Authorization::Deny
    }
}

fn authorize(ctx: AuthContext<'_>) -> Authorization {
    let in_catalog = ctx
        .database_name
        .is_some_and(|d| named(CATALOG_DATABASES, d));
    match ctx.action {
        // Only private, fileless databases may be attached: `''` (a temporary
        // database, which plain VACUUM attaches internally) and `:memory:`.
        // A computed name arrives as `Unknown` (no filename) and is denied.
        AuthAction::Attach { filename } => allow_if(filename.is_empty() || filename == ":memory:"),
        AuthAction::Detach { database_name } => {
            allow_if(!named(PROTECTED_DATABASES, database_name))
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => {
            let name = pragma_name.to_ascii_lowercase();
            allow_if(
                ALLOWED_PRAGMAS.contains(&name.as_str())
                    && (pragma_value.is_none() || !READ_ONLY_PRAGMAS.contains(&name.as_str())),
            )
        }
        AuthAction::Function { function_name } => allow_if(!named(DENIED_FUNCTIONS, function_name)),
        AuthAction::CreateVtable { module_name, .. } => {
            allow_if(!in_catalog && named(ALLOWED_MODULES, module_name))
        }
        AuthAction::Read { table_name, .. } => allow_if(!named(DENIED_TABLES, table_name)),
        AuthAction::Insert { table_name }
        | AuthAction::Update { table_name, .. }
        | AuthAction::Delete { table_name } => allow_if(
            (!in_catalog || named(STAT_TABLES, table_name)) && !named(DENIED_TABLES, table_name),
        ),
        AuthAction::Analyze { .. } => Authorization::Allow,
        // Schema changes, anywhere but in the catalog.
        AuthAction::CreateIndex { .. }
        | AuthAction::CreateTable { .. }
        | AuthAction::CreateTrigger { .. }
        | AuthAction::CreateView { .. }
        | AuthAction::DropIndex { .. }
        | AuthAction::DropTable { .. }
        | AuthAction::DropTrigger { .. }
        | AuthAction::DropView { .. }
        | AuthAction::DropVtable { .. }
        | AuthAction::AlterTable { .. }
        | AuthAction::Reindex { .. } => allow_if(!in_catalog),
        AuthAction::CreateTempIndex { .. }
        | AuthAction::CreateTempTable { .. }
        | AuthAction::CreateTempTrigger { .. }
        | AuthAction::CreateTempView { .. }
        | AuthAction::DropTempIndex { .. }
        | AuthAction::DropTempTable { .. }
        | AuthAction::DropTempTrigger { .. }
        | AuthAction::DropTempView { .. }
        | AuthAction::Select
        | AuthAction::Transaction { .. }
        | AuthAction::Savepoint { .. }
        | AuthAction::Recursive => Authorization::Allow,
        _ => {
            tracing::debug!(action = ?ctx.action, "sandbox: denied an action it does not know");
            Authorization::Deny
        }
    }
}
