//! The requests the protocol layer sends down the tower stack, and what
//! comes back: plain data, with no behaviour (a `scheduler::Query` carries
//! a `Request` to a session).

use std::sync::Arc;

use libsql_sys::rusqlite::types::Value;
use pgwire::api::Type;

use crate::error::SqlError;
use crate::memory::Held;

#[derive(Debug, Clone)]
pub enum Request {
    /// Prepare a single statement: check it, describe its parameters and
    /// result columns (extended protocol Parse/Describe).
    Prepare { sql: String },
    /// Run SQL text. In `Batch` mode the text may hold several statements
    /// (simple protocol); in `Single` mode exactly one, with parameters,
    /// and the result columns take the `column_types` given at Describe time
    /// so they match what the client was told.
    Execute {
        sql: String,
        params: Vec<Value>,
        mode: ExecuteMode,
        column_types: Option<Vec<Type>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecuteMode {
    Batch,
    Single,
}

/// The reply to a `Query`: the outcome and the transaction state of the
/// session after it (which ReadyForQuery reports).
#[derive(Debug)]
pub struct Response {
    pub outcome: Outcome,
    pub txn: TxnState,
}

#[derive(Debug)]
pub enum Outcome {
    Prepared(Arc<PreparedStatement>),
    /// One entry per statement run; a batch stops at its first error.
    Executed(Vec<Result<StatementResult, SqlError>>),
}

/// The transaction state of a session, as Postgres reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxnState {
    #[default]
    Idle,
    /// Inside BEGIN ... COMMIT.
    Active,
    /// A statement failed inside a transaction: everything but ROLLBACK
    /// fails with 25P02 until the transaction ends.
    Failed,
}

/// A result column: its name and the Postgres type it is sent as.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: Type,
}

/// What Parse learns about a statement.
#[derive(Debug, Clone)]
pub struct PreparedStatement {
    pub sql: String,
    /// Parameter types inferred from the statement (TEXT when nothing is
    /// known); the client's own types, when it sent some, take precedence.
    pub param_types: Vec<Type>,
    /// Empty for statements that return no rows.
    pub columns: Vec<Column>,
}

/// The result of one statement.
#[derive(Debug)]
pub struct StatementResult {
    /// CommandComplete tag, e.g. `INSERT 0 1` or `SELECT 3`.
    pub tag: String,
    /// `None` for statements that return no rows (no RowDescription).
    pub columns: Option<Vec<Column>>,
    pub rows: Vec<Vec<Value>>,
    /// The rows' place in their session's memory budget, given back when
    /// they are dropped.
    pub held: Held,
}

impl StatementResult {
    /// The result of a statement that returns no rows.
    pub fn no_rows(tag: impl Into<String>) -> Self {
        StatementResult {
            tag: tag.into(),
            columns: None,
            rows: Vec::new(),
            held: Held::default(),
        }
    }
}

impl Request {
    /// A short label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Prepare { .. } => "prepare",
            Request::Execute { .. } => "execute",
        }
    }
}
