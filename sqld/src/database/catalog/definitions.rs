//! What the catalog reads from the SQL text SQLite keeps of an object
//! (`sqlite_schema.sql`): a view's query (`pg_get_viewdef`) and the
//! relations it reads (`pg_depend`, so tools create a view after them),
//! and a table's CHECK constraints (`pg_constraint`).

use libsql_sys::rusqlite::functions::{Context, FunctionFlags};
use libsql_sys::rusqlite::{Connection, OptionalExtension, Result};
use sqlparser::ast::{ColumnOption, Expr, Statement, TableConstraint};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

pub(super) fn install(conn: &Connection) -> Result<()> {
    // Not deterministic: the schema changes under the same arguments.
    let flags = || FunctionFlags::SQLITE_UTF8;
    conn.create_scalar_function("sqld_view_definition", 1, flags(), |ctx| {
        // Ended by a semicolon, as Postgres gives it.
        Ok(schema_sql(ctx)?.and_then(|sql| view_query(&sql).map(|q| format!("{q};"))))
    })?;
    conn.create_scalar_function("sqld_view_relations", 1, flags(), |ctx| {
        let relations = schema_sql(ctx)?.map_or_else(Vec::new, |sql| view_relations(&sql));
        Ok(serde_json::Value::from(relations).to_string())
    })?;
    conn.create_scalar_function("sqld_check_constraints", 1, flags(), |ctx| {
        let checks = schema_sql(ctx)?.map_or_else(Vec::new, |sql| check_constraints(&sql));
        let checks: Vec<serde_json::Value> = checks
            .into_iter()
            .map(|(name, expr)| serde_json::json!({"name": name, "expr": expr}))
            .collect();
        Ok(serde_json::Value::from(checks).to_string())
    })
}

/// The SQL text of the object of the main database named by the
/// function's argument.
fn schema_sql(ctx: &Context<'_>) -> Result<Option<String>> {
    let name: Option<String> = ctx.get(0)?;
    let Some(name) = name else {
        return Ok(None);
    };
    // SAFETY: the connection is only read, on the thread running the
    // statement that called the function.
    let conn = unsafe { ctx.get_connection()? };
    let mut stmt =
        conn.prepare_cached("SELECT sql FROM main.sqlite_schema WHERE name = ?1 COLLATE NOCASE")?;
    Ok(stmt
        .query_row([name], |row| row.get::<_, Option<String>>(0))
        .optional()?
        .flatten())
}

/// The query of `CREATE VIEW name [(columns)] AS query`, as written: the
/// text after the first `AS` outside quotes and brackets.
fn view_query(create_view: &str) -> Option<&str> {
    let bytes = create_view.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += 1;
                }
            }
            b'[' => {
                while i < bytes.len() && bytes[i] != b']' {
                    i += 1;
                }
            }
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b'a' | b'A' if depth == 0 => {
                let word_start = i == 0 || !is_word_byte(bytes[i - 1]);
                let is_as = bytes
                    .get(i + 1)
                    .is_some_and(|c| c.eq_ignore_ascii_case(&b's'))
                    && !bytes.get(i + 2).copied().is_some_and(is_word_byte);
                if word_start && is_as {
                    return Some(create_view[i + 2..].trim());
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$'
}

/// The tables and views a view reads (the names its query gives in FROM
/// and JOIN, common table expressions excluded), in lower case.
fn view_relations(create_view: &str) -> Vec<String> {
    let Ok(statements) = Parser::parse_sql(&SQLiteDialect {}, create_view) else {
        return Vec::new();
    };
    // Names that are not relations read: the view itself, its CTEs.
    let mut own = Vec::new();
    let _ = sqlparser::ast::visit_statements(&statements, |statement| {
        if let Statement::CreateView(view) = statement {
            own.extend(view.name.0.last().map(|p| unquoted(p).to_lowercase()));
            if let Some(with) = &view.query.with {
                own.extend(
                    with.cte_tables
                        .iter()
                        .map(|c| c.alias.name.value.to_lowercase()),
                );
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    let mut relations = Vec::new();
    let _ = sqlparser::ast::visit_relations(&statements, |name| {
        let table = name
            .0
            .last()
            .map_or_else(String::new, unquoted)
            .to_lowercase();
        if !own.contains(&table) && !relations.contains(&table) {
            relations.push(table);
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    relations
}

/// A table's CHECK constraints, as (name, expression): named as the
/// CREATE TABLE names them, else as Postgres would, after the table and
/// the first column the expression reads (`t_a_check`, then `t_a_check1`).
fn check_constraints(create_table: &str) -> Vec<(String, String)> {
    let Ok(mut statements) = Parser::parse_sql(&SQLiteDialect {}, create_table) else {
        return Vec::new();
    };
    let Some(Statement::CreateTable(table)) = statements.pop() else {
        return Vec::new();
    };
    let table_name = table.name.0.last().map_or_else(String::new, unquoted);
    let column_checks = table.columns.iter().flat_map(|column| {
        column
            .options
            .iter()
            .filter_map(|option| match &option.option {
                ColumnOption::Check(check) => Some((option.name.as_ref(), check.expr.as_ref())),
                _ => None,
            })
    });
    let table_checks = table
        .constraints
        .iter()
        .filter_map(|constraint| match constraint {
            TableConstraint::Check(check) => Some((check.name.as_ref(), check.expr.as_ref())),
            _ => None,
        });
    let mut checks: Vec<(String, String)> = Vec::new();
    for (name, expr) in column_checks.chain(table_checks) {
        let name = match name {
            Some(name) => name.value.clone(),
            None => {
                let base = match first_column(expr) {
                    Some(column) => format!("{table_name}_{column}_check"),
                    None => format!("{table_name}_check"),
                };
                let taken = |n: &String| checks.iter().any(|(c, _)| c == n);
                let mut name = base.clone();
                let mut suffix = 0;
                while taken(&name) {
                    suffix += 1;
                    name = format!("{base}{suffix}");
                }
                name
            }
        };
        checks.push((name, expr.to_string()));
    }
    checks
}

fn unquoted(part: &sqlparser::ast::ObjectNamePart) -> String {
    part.to_string()
        .trim_matches(['"', '`', '[', ']'])
        .to_owned()
}

/// The first column an expression names.
fn first_column(expr: &Expr) -> Option<String> {
    let mut found = None;
    let _ = sqlparser::ast::visit_expressions(expr, |e| match e {
        Expr::Identifier(ident) => {
            found = Some(ident.value.clone());
            std::ops::ControlFlow::Break(())
        }
        _ => std::ops::ControlFlow::Continue(()),
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_query_is_the_text_after_its_as() {
        assert_eq!(
            view_query("CREATE VIEW v AS select id from t"),
            Some("select id from t")
        );
        assert_eq!(
            view_query("create view \"as\"(a, \"as\") as\n select 1 as a, 2"),
            Some("select 1 as a, 2")
        );
        assert_eq!(
            view_query("create view basis as select 1"),
            Some("select 1")
        );
    }

    #[test]
    fn a_view_reads_the_relations_it_names() {
        assert_eq!(
            view_relations(
                "create view v as with c as (select * from a) select * from c join B on 1 \
                 where exists (select 1 from d)"
            ),
            vec!["a", "b", "d"]
        );
    }

    #[test]
    fn check_constraints_are_named_as_in_postgres() {
        assert_eq!(
            check_constraints(
                "create table t (a int check (a > 0), b int, check (b < 5), \
                 constraint named check (a <> b), check (b > 1))"
            ),
            vec![
                ("t_a_check".to_owned(), "a > 0".to_owned()),
                ("t_b_check".to_owned(), "b < 5".to_owned()),
                ("named".to_owned(), "a <> b".to_owned()),
                ("t_b_check1".to_owned(), "b > 1".to_owned()),
            ]
        );
    }
}
