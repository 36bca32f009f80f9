//! Where SQLite errors become SQLSTATEs: the one place that maps libsql's
//! result codes (and the few messages that carry more meaning than their
//! code) onto the error codes Postgres clients branch on.

use libsql_sys::ffi;
use libsql_sys::rusqlite;
use pgwire::error::{ErrorInfo, PgWireError};

/// SQLSTATE codes sqld sends. Named so call sites read as intent.
pub mod sqlstate {
    pub const SYNTAX_ERROR: &str = "42601";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const DUPLICATE_TABLE: &str = "42P07";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    pub const SYNTAX_OR_ACCESS_RULE: &str = "42000";
    pub const UNIQUE_VIOLATION: &str = "23505";
    pub const NOT_NULL_VIOLATION: &str = "23502";
    pub const FOREIGN_KEY_VIOLATION: &str = "23503";
    pub const CHECK_VIOLATION: &str = "23514";
    pub const INTEGRITY_CONSTRAINT: &str = "23000";
    pub const LOCK_NOT_AVAILABLE: &str = "55P03";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const READ_ONLY_TRANSACTION: &str = "25006";
    pub const IN_FAILED_TRANSACTION: &str = "25P02";
    pub const IDLE_IN_TRANSACTION_TIMEOUT: &str = "25P03";
    pub const TRANSACTION_TIMEOUT: &str = "25P04";
    pub const CONNECTION_FAILURE: &str = "08006";
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    pub const OUT_OF_MEMORY: &str = "53200";
    pub const DISK_FULL: &str = "53100";
    pub const QUERY_CANCELED: &str = "57014";
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
    pub const BAD_COPY_FILE_FORMAT: &str = "22P04";
    pub const CHARACTER_NOT_IN_REPERTOIRE: &str = "22021";
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    pub const INVALID_DATETIME_FORMAT: &str = "22007";
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const IO_ERROR: &str = "58030";
    pub const DATA_CORRUPTED: &str = "XX001";
    pub const INTERNAL_ERROR: &str = "XX000";
}

/// An error to report to a SQL client: a SQLSTATE and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (SQLSTATE {code})")]
pub struct SqlError {
    pub code: &'static str,
    pub message: String,
}

impl SqlError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn canceled() -> Self {
        Self::new(
            sqlstate::QUERY_CANCELED,
            "canceling statement due to user request",
        )
    }

    pub fn write_transaction_timeout() -> Self {
        Self::new(
            sqlstate::TRANSACTION_TIMEOUT,
            "the transaction held the write lock longer than the write transaction timeout \
             (--write-transaction-timeout) and was rolled back",
        )
    }

    pub fn client_disconnected() -> Self {
        Self::new(
            sqlstate::CONNECTION_FAILURE,
            "canceling statement: the client disconnected",
        )
    }

    pub fn statement_timeout() -> Self {
        Self::new(
            sqlstate::QUERY_CANCELED,
            "canceling statement due to statement timeout",
        )
    }

    pub fn admin_shutdown() -> Self {
        Self::new(
            sqlstate::ADMIN_SHUTDOWN,
            "terminating statement due to administrator command (the server is shutting down)",
        )
    }

    pub fn in_failed_transaction() -> Self {
        Self::new(
            sqlstate::IN_FAILED_TRANSACTION,
            "current transaction is aborted, commands ignored until end of transaction block",
        )
    }

    /// The SQLSTATE class (its first two characters), the label metrics use.
    pub fn class(&self) -> &'static str {
        &self.code[..2]
    }
}

impl From<SqlError> for PgWireError {
    fn from(e: SqlError) -> Self {
        PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".to_owned(),
            e.code.to_owned(),
            e.message,
        )))
    }
}

impl From<rusqlite::Error> for SqlError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(err, msg) => {
                let message = msg.clone().unwrap_or_else(|| err.to_string());
                SqlError::new(sqlstate_for(err.extended_code, &message), message)
            }
            rusqlite::Error::SqlInputError { error, msg, .. } => {
                SqlError::new(sqlstate_for(error.extended_code, msg), msg.clone())
            }
            rusqlite::Error::MultipleStatement => SqlError::new(
                sqlstate::SYNTAX_ERROR,
                "cannot insert multiple commands into a prepared statement",
            ),
            rusqlite::Error::InvalidParameterCount(given, expected) => SqlError::new(
                sqlstate::PROTOCOL_VIOLATION,
                format!("bind message supplies {given} parameters, but prepared statement requires {expected}"),
            ),
            rusqlite::Error::Utf8Error(_) => SqlError::new(
                sqlstate::INVALID_TEXT_REPRESENTATION,
                "invalid UTF-8 in a text value",
            ),
            other => SqlError::new(sqlstate::INTERNAL_ERROR, other.to_string()),
        }
    }
}

/// Maps an extended SQLite result code, and for the generic `SQLITE_ERROR`
/// its message, to a SQLSTATE.
pub fn sqlstate_for(extended_code: i32, message: &str) -> &'static str {
    use sqlstate::*;
    match extended_code {
        ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
            return UNIQUE_VIOLATION
        }
        ffi::SQLITE_CONSTRAINT_NOTNULL => return NOT_NULL_VIOLATION,
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => return FOREIGN_KEY_VIOLATION,
        ffi::SQLITE_CONSTRAINT_CHECK => return CHECK_VIOLATION,
        ffi::SQLITE_BUSY_SNAPSHOT => return SERIALIZATION_FAILURE,
        _ => {}
    }
    match extended_code & 0xff {
        ffi::SQLITE_CONSTRAINT => INTEGRITY_CONSTRAINT,
        ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED => LOCK_NOT_AVAILABLE,
        ffi::SQLITE_READONLY => READ_ONLY_TRANSACTION,
        ffi::SQLITE_AUTH | ffi::SQLITE_PERM => INSUFFICIENT_PRIVILEGE,
        ffi::SQLITE_INTERRUPT => QUERY_CANCELED,
        ffi::SQLITE_NOMEM => OUT_OF_MEMORY,
        ffi::SQLITE_FULL => DISK_FULL,
        ffi::SQLITE_TOOBIG => PROGRAM_LIMIT_EXCEEDED,
        ffi::SQLITE_MISMATCH => DATATYPE_MISMATCH,
        ffi::SQLITE_RANGE => INVALID_PARAMETER_VALUE,
        ffi::SQLITE_IOERR | ffi::SQLITE_CANTOPEN => IO_ERROR,
        ffi::SQLITE_CORRUPT | ffi::SQLITE_NOTADB => DATA_CORRUPTED,
        ffi::SQLITE_ERROR => sqlstate_for_message(message),
        _ => INTERNAL_ERROR,
    }
}

/// `SQLITE_ERROR` covers every kind of bad SQL; its message tells them apart.
fn sqlstate_for_message(message: &str) -> &'static str {
    use sqlstate::*;
    let m = message.to_ascii_lowercase();
    if m.contains("syntax error")
        || m.contains("incomplete input")
        || m.contains("unrecognized token")
    {
        SYNTAX_ERROR
    } else if m.starts_with("no such table") || m.starts_with("no such view") {
        UNDEFINED_TABLE
    } else if m.starts_with("no such column") || m.contains("has no column named") {
        UNDEFINED_COLUMN
    } else if m.starts_with("no such function") || m.starts_with("wrong number of arguments") {
        UNDEFINED_FUNCTION
    } else if m.contains("already exists") {
        DUPLICATE_TABLE
    } else if m.starts_with("not authorized") || m.starts_with("unsafe use of") {
        // The second is SQLite refusing a function with side effects in a
        // view, trigger or index of the schema (it does not trust the
        // schema): a denial like the sandbox's.
        INSUFFICIENT_PRIVILEGE
    } else if m.contains("cannot start a transaction within a transaction")
        || m.contains("no transaction is active")
    {
        "25001"
    } else {
        SYNTAX_OR_ACCESS_RULE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_codes_map_to_integrity_classes() {
        assert_eq!(sqlstate_for(ffi::SQLITE_CONSTRAINT_UNIQUE, ""), "23505");
        assert_eq!(sqlstate_for(ffi::SQLITE_CONSTRAINT_PRIMARYKEY, ""), "23505");
        assert_eq!(sqlstate_for(ffi::SQLITE_CONSTRAINT_NOTNULL, ""), "23502");
        assert_eq!(sqlstate_for(ffi::SQLITE_CONSTRAINT_FOREIGNKEY, ""), "23503");
        assert_eq!(sqlstate_for(ffi::SQLITE_CONSTRAINT_CHECK, ""), "23514");
    }

    #[test]
    fn generic_errors_are_told_apart_by_message() {
        assert_eq!(
            sqlstate_for(ffi::SQLITE_ERROR, "near \"SELEC\": syntax error"),
            "42601"
        );
        assert_eq!(sqlstate_for(ffi::SQLITE_ERROR, "no such table: t"), "42P01");
        assert_eq!(
            sqlstate_for(ffi::SQLITE_ERROR, "no such column: x"),
            "42703"
        );
        assert_eq!(
            sqlstate_for(ffi::SQLITE_ERROR, "table t has no column named x"),
            "42703"
        );
        assert_eq!(
            sqlstate_for(ffi::SQLITE_ERROR, "table t already exists"),
            "42P07"
        );
    }

    #[test]
    fn operational_codes() {
        assert_eq!(sqlstate_for(ffi::SQLITE_BUSY, ""), "55P03");
        assert_eq!(sqlstate_for(ffi::SQLITE_BUSY_SNAPSHOT, ""), "40001");
        assert_eq!(sqlstate_for(ffi::SQLITE_READONLY, ""), "25006");
        assert_eq!(sqlstate_for(ffi::SQLITE_AUTH, ""), "42501");
        assert_eq!(sqlstate_for(ffi::SQLITE_INTERRUPT, ""), "57014");
        assert_eq!(SqlError::canceled().class(), "57");
    }
}
