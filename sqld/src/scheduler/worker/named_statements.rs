//! SQL-level prepared statements: `PREPARE`, `EXECUTE`, `DEALLOCATE` (and
//! `DISCARD ALL`). A prepared statement is a name for a statement's text and
//! its declared parameter types, kept for the session (not the
//! transaction); EXECUTE evaluates its arguments and runs the statement
//! with them as its parameters, as if the client had sent them so, which
//! is also how a replica forwards it when it writes.

use std::collections::HashMap;
use std::sync::Arc;

use libsql_sys::rusqlite::types::Value;
use pgwire::api::Type;

use super::{bind_params, copy_row, no_rows, Worker};
use crate::error::{sqlstate, SqlError};
use crate::memory::Held;
use crate::query::{PreparedStatement, StatementResult, TxnState};
use crate::sql::{self, PreparedCommand};
use crate::types;

/// What one session may keep prepared (the text is held until DEALLOCATE).
const MAX_NAMED_STATEMENTS: usize = 1_000;
const MAX_NAMED_STATEMENT_BYTES: usize = 16 * 1024 * 1024;
const DUPLICATE_PREPARED_STATEMENT: &str = "42P05";
const INVALID_STATEMENT_NAME: &str = "26000";

/// A session's prepared statements, by name.
#[derive(Default)]
pub(super) struct NamedStatements {
    by_name: HashMap<String, Named>,
    bytes: usize,
}

#[derive(Clone)]
struct Named {
    statement: String,
    /// Declared with PREPARE; `None` for a type sqld does not convert to
    /// (the argument is bound as it is).
    param_types: Vec<Option<Type>>,
}

impl NamedStatements {
    fn insert(&mut self, name: String, named: Named) -> Result<(), SqlError> {
        if self.by_name.contains_key(&name) {
            return Err(SqlError::new(
                DUPLICATE_PREPARED_STATEMENT,
                format!("prepared statement \"{name}\" already exists"),
            ));
        }
        let bytes = self.bytes + named.statement.len();
        if self.by_name.len() >= MAX_NAMED_STATEMENTS || bytes > MAX_NAMED_STATEMENT_BYTES {
            return Err(SqlError::new(
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "too many prepared statements (at most {MAX_NAMED_STATEMENTS} per session, \
                     {} MiB of SQL): DEALLOCATE some",
                    MAX_NAMED_STATEMENT_BYTES / (1024 * 1024)
                ),
            ));
        }
        self.bytes = bytes;
        self.by_name.insert(name, named);
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Named, SqlError> {
        self.by_name.get(name).cloned().ok_or_else(|| {
            SqlError::new(
                INVALID_STATEMENT_NAME,
                format!("prepared statement \"{name}\" does not exist"),
            )
        })
    }

    /// Unknown names are no error: the name may be a protocol-level
    /// statement's, which the connection releases itself.
    fn remove(&mut self, name: &str) {
        if let Some(named) = self.by_name.remove(name) {
            self.bytes -= named.statement.len();
        }
    }

    fn clear(&mut self) {
        self.by_name.clear();
        self.bytes = 0;
    }
}

impl Worker {
    pub(super) fn run_prepared_command(
        &mut self,
        command: &Result<PreparedCommand, SqlError>,
        params: &[Value],
        column_types: Option<&[Type]>,
    ) -> Result<StatementResult, SqlError> {
        if self.txn == TxnState::Failed {
            return Err(SqlError::in_failed_transaction());
        }
        let result = command.clone().and_then(|command| match command {
            PreparedCommand::Prepare {
                name,
                param_types,
                statement,
            } => self.prepare_named(name, &param_types, statement),
            PreparedCommand::Execute { name, arguments } => {
                self.execute_named(&name, arguments, params, column_types)
            }
            PreparedCommand::Deallocate(Some(name)) => {
                self.named_statements.remove(&name);
                Ok(no_rows("DEALLOCATE"))
            }
            PreparedCommand::Deallocate(None) => {
                self.named_statements.clear();
                Ok(no_rows("DEALLOCATE ALL"))
            }
            PreparedCommand::DiscardAll => {
                self.named_statements.clear();
                self.cursors.close_all();
                Ok(no_rows("DISCARD ALL"))
            }
        });
        if result.is_err() {
            self.poison_on_error();
        }
        result
    }

    /// Parse of EXECUTE: the columns of the statement it runs, and the
    /// parameters of its arguments.
    pub(super) fn describe_prepared_command(
        &mut self,
        sql: &str,
        command: PreparedCommand,
    ) -> Result<Arc<PreparedStatement>, SqlError> {
        let mut described = PreparedStatement {
            sql: sql.to_owned(),
            param_types: Vec::new(),
            columns: Vec::new(),
        };
        if let PreparedCommand::Execute { name, arguments } = command {
            let named = self.named_statements.get(&name)?;
            described.columns = self.prepare(&named.statement)?.columns.clone();
            if let Some(arguments) = arguments {
                described.param_types = self.prepare(&select_of(arguments))?.param_types.clone();
            }
        }
        Ok(Arc::new(described))
    }

    fn prepare_named(
        &mut self,
        name: String,
        param_types: &[&str],
        statement: &str,
    ) -> Result<StatementResult, SqlError> {
        let classified = sql::Statement::classify(statement);
        if classified.control.is_some()
            || classified.session.is_some()
            || classified.cursor.is_some()
            || classified.prepared.is_some()
        {
            return Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                "PREPARE takes a query or a data change (SELECT, VALUES, INSERT, UPDATE, DELETE)",
            ));
        }
        // As in Postgres, a statement that cannot be prepared is refused now.
        self.prepare(statement)?;
        let named = Named {
            statement: statement.to_owned(),
            param_types: param_types.iter().map(|t| type_named(t)).collect(),
        };
        self.named_statements.insert(name, named)?;
        Ok(no_rows("PREPARE"))
    }

    fn execute_named(
        &mut self,
        name: &str,
        arguments: Option<&str>,
        params: &[Value],
        column_types: Option<&[Type]>,
    ) -> Result<StatementResult, SqlError> {
        let named = self.named_statements.get(name)?;
        let expected = self.prepare(&named.statement)?.param_types.len();
        let expected = expected.max(named.param_types.len());
        // Held (counted) until the statement has run.
        let (values, _held) = self.evaluate_arguments(arguments, params)?;
        if values.len() != expected {
            return Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                format!(
                    "wrong number of parameters for prepared statement \"{name}\": \
                     expected {expected}, got {}",
                    values.len()
                ),
            ));
        }
        let values = values
            .into_iter()
            .enumerate()
            .map(|(i, value)| match named.param_types.get(i) {
                Some(Some(ty)) => convert(value, ty),
                _ => Ok(value),
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.run_statement(
            &sql::Statement::classify(&named.statement),
            &values,
            column_types,
        )
    }

    /// EXECUTE's arguments, evaluated by SQLite (they are expressions,
    /// literals mostly), counted in the session's result budget while the
    /// statement runs.
    fn evaluate_arguments(
        &mut self,
        arguments: Option<&str>,
        params: &[Value],
    ) -> Result<(Vec<Value>, Held), SqlError> {
        let mut held = self.result_memory.charge();
        let Some(arguments) = arguments else {
            return Ok((Vec::new(), held));
        };
        let select = select_of(arguments);
        let select = sql::Statement::classify(&select);
        let mut stmt = self.conn.prepare(&select.runnable)?;
        bind_params(&mut stmt, params)?;
        let column_count = stmt.column_count();
        let invalid_text = self.invalid_text();
        let mut rows = stmt.raw_query();
        let values = match rows.next()? {
            Some(row) => copy_row(row, column_count, &mut held, invalid_text)?,
            None => Vec::new(),
        };
        Ok((values, held))
    }
}

/// A query that evaluates EXECUTE's arguments, one column each.
fn select_of(arguments: &str) -> String {
    format!("SELECT {arguments}")
}

/// The type a PREPARE names, when sqld converts arguments to it.
fn type_named(name: &str) -> Option<Type> {
    match name.trim().to_ascii_lowercase().as_str() {
        "bytea" => Some(Type::BYTEA),
        name => types::type_for_decltype(name),
    }
}

/// An argument as a parameter of the declared type: read from its text,
/// as a parameter sent in text would be (`'5'` for an int is 5).
fn convert(value: Value, ty: &Type) -> Result<Value, SqlError> {
    let text = match &value {
        Value::Null | Value::Blob(_) => return Ok(value),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => types::format_float(*f),
        Value::Text(s) => s.clone(),
    };
    types::decode_param(Some(text.as_bytes()), ty, false)
}
