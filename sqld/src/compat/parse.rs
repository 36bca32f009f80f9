//! What the compatibility layer's translations share to read a statement.

use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// The statement's first word, nothing parsed.
pub(super) fn first_word(sql: &str) -> &str {
    sql.split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .find(|w| !w.is_empty())
        .unwrap_or("")
}

/// The one statement `sql` holds, parsed.
pub(super) fn parse_one(sql: &str) -> Option<Statement> {
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    match (statements.pop(), statements.pop()) {
        (Some(statement), None) => Some(statement),
        _ => None,
    }
}
