//! The sandbox: SQL from clients must not reach the server's file system
//! or process. Enforced by the SQLite authorizer on every statement, so it
//! holds however the SQL is spelled; a denied statement fails with
//! SQLITE_AUTH, which becomes SQLSTATE 42501, and the session goes on.

use libsql_sys::rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use libsql_sys::rusqlite::Connection;

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
const PROTECTED_DATABASES: &[&str] = &["main", "temp", "pg_catalog"];

/// SQL functions that reach outside the database.
const DENIED_FUNCTIONS: &[&str] = &[
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
];

pub fn install(conn: &Connection) {
    conn.authorizer(Some(authorize));
}

fn authorize(ctx: AuthContext<'_>) -> Authorization {
    match ctx.action {
        // Only private, fileless databases may be attached: `''` (a temporary
        // database, which plain VACUUM attaches internally) and `:memory:`.
        AuthAction::Attach { filename } => {
            if filename.is_empty() || filename == ":memory:" {
                Authorization::Allow
            } else {
                Authorization::Deny
            }
        }
        AuthAction::Detach { database_name } => {
            if PROTECTED_DATABASES
                .iter()
                .any(|d| d.eq_ignore_ascii_case(database_name))
            {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => {
            let name = pragma_name.to_ascii_lowercase();
            let allowed = ALLOWED_PRAGMAS.contains(&name.as_str())
                && (pragma_value.is_none() || !READ_ONLY_PRAGMAS.contains(&name.as_str()));
            if allowed {
                Authorization::Allow
            } else {
                Authorization::Deny
            }
        }
        AuthAction::Function { function_name } => {
            if DENIED_FUNCTIONS
                .iter()
                .any(|f| f.eq_ignore_ascii_case(function_name))
            {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }
        // The compatibility catalog is sqld's, not the client's to change.
        AuthAction::Insert { table_name }
        | AuthAction::Update { table_name, .. }
        | AuthAction::Delete { table_name }
            if ctx.database_name == Some("pg_catalog") =>
        {
            let _ = table_name;
            Authorization::Deny
        }
        _ => Authorization::Allow,
    }
}
