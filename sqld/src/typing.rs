//! What a statement's expressions say about types, for Parse: a parameter
//! takes the type of what it meets (`$1 + 1`, `coalesce($1, 0)`,
//! `INSERT INTO t (a) SELECT $1`), and a computed result column the type
//! of its expression (`count(*)` is int8, `price * 2` the price's type),
//! as Postgres types them. Comparisons stay what SQLite computes, integers
//! (1 or 0), as they are in a simple query's results.
//!
//! This runs only when the cheap hints of `sql::param_hints` and the
//! declared column types leave something untyped, and only at Parse, whose
//! description a session caches: a statement run again is not parsed again.

use std::collections::HashMap;
use std::ops::ControlFlow;

use pgwire::api::Type;
use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, InTarget, SelectItem,
    SetExpr, Statement, UnaryOperator, Value, Visit, Visitor,
};
use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use crate::types;

/// The types read from a statement's expressions.
#[derive(Debug, Default, PartialEq)]
pub struct Inferred {
    /// By 1-based parameter number.
    pub params: HashMap<usize, Type>,
    /// For each result column of the top-level SELECT (or RETURNING), in
    /// order; `None` where the expression says nothing.
    pub columns: Vec<Option<Type>>,
}

/// Reads `sql` (SQLite text, as it will run); `column` gives the type of a
/// column by its lower-cased name, `known` the parameters typed already.
/// `None` when the parser cannot read it.
pub fn infer(
    sql: &str,
    column: &dyn Fn(&str) -> Option<Type>,
    known: HashMap<usize, Type>,
) -> Option<Inferred> {
    let statement = parse(sql)?;
    let mut typer = Typer {
        column,
        params: known,
    };
    // Twice: a parameter typed late in the text can type an expression
    // seen earlier (`select $1 + 1 ... where $1 = id`).
    for _ in 0..2 {
        let _ = statement.visit(&mut typer);
        typer.insert_select(&statement);
    }
    let columns = result_items(&statement)
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                typer.type_of(e)
            }
            _ => None,
        })
        .collect();
    Some(Inferred {
        params: typer.params,
        columns,
    })
}

fn parse(sql: &str) -> Option<Statement> {
    let one = |mut statements: Vec<Statement>| match (statements.pop(), statements.pop()) {
        (Some(s), None) => Some(s),
        _ => None,
    };
    Parser::parse_sql(&SQLiteDialect {}, sql)
        .ok()
        .and_then(one)
        .or_else(|| {
            Parser::parse_sql(&PostgreSqlDialect {}, sql)
                .ok()
                .and_then(one)
        })
}

/// The top-level result columns: a query's first SELECT, or a DML
/// statement's RETURNING list.
fn result_items(statement: &Statement) -> &[SelectItem] {
    let returning = match statement {
        Statement::Query(query) => {
            return match query.body.as_ref() {
                SetExpr::Select(select) => &select.projection,
                _ => &[],
            }
        }
        Statement::Insert(insert) => &insert.returning,
        Statement::Update(update) => &update.returning,
        Statement::Delete(delete) => &delete.returning,
        _ => &None,
    };
    returning.as_deref().unwrap_or(&[])
}

struct Typer<'a> {
    column: &'a dyn Fn(&str) -> Option<Type>,
    params: HashMap<usize, Type>,
}

impl Visitor for Typer<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::BinaryOp { left, op, right }
                if !matches!(op, BinaryOperator::And | BinaryOperator::Or) =>
            {
                let concat = matches!(op, BinaryOperator::StringConcat).then_some(Type::TEXT);
                self.meet(left, concat.clone().or_else(|| self.type_of(right)));
                self.meet(right, concat.or_else(|| self.type_of(left)));
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                let ty = self.type_of(expr);
                self.meet(low, ty.clone());
                self.meet(high, ty.clone());
                self.meet(expr, self.type_of(low).or_else(|| self.type_of(high)));
            }
            Expr::In {
                expr,
                target: InTarget::List(list),
                ..
            } => {
                let ty = self.type_of(expr);
                for item in list {
                    self.meet(item, ty.clone());
                }
            }
            Expr::UnaryOp {
                op: UnaryOperator::Minus | UnaryOperator::Plus,
                expr,
            } => self.meet(expr, Some(Type::FLOAT8)),
            Expr::Function(f) => {
                let name = f.name.to_string().to_ascii_lowercase();
                let args = arguments(&f.args);
                let ty = match name.as_str() {
                    // The type of the other arguments.
                    n if SAME_TYPE_FUNCTIONS.contains(&n) => {
                        args.iter().find_map(|a| self.type_of(a))
                    }
                    n if NUMBER_FUNCTIONS.contains(&n) => Some(Type::FLOAT8),
                    _ => None,
                };
                for arg in args {
                    self.meet(arg, ty.clone());
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Functions whose arguments share one type (and whose result has it).
const SAME_TYPE_FUNCTIONS: &[&str] = &["coalesce", "ifnull", "nullif", "max", "min", "iif"];
/// Functions of a number, which any number may be passed to.
const NUMBER_FUNCTIONS: &[&str] = &["abs", "round", "sign", "ceil", "ceiling", "floor", "sqrt"];

impl Typer<'_> {
    /// A parameter meeting a value of type `ty` takes it, unless the text
    /// typed it already.
    fn meet(&mut self, expr: &Expr, ty: Option<Type>) {
        let (Some(n), Some(ty)) = (placeholder(expr), ty) else {
            return;
        };
        self.params.entry(n).or_insert(ty);
    }

    /// `INSERT INTO t (a, b) SELECT $1, $2`: each parameter the column it
    /// fills.
    fn insert_select(&mut self, statement: &Statement) {
        let Statement::Insert(insert) = statement else {
            return;
        };
        let Some(SetExpr::Select(select)) = insert.source.as_ref().map(|q| q.body.as_ref()) else {
            return;
        };
        for (item, column) in select.projection.iter().zip(&insert.columns) {
            if let SelectItem::UnnamedExpr(e) = item {
                let name = column.to_string().to_ascii_lowercase();
                let ty = (self.column)(name.trim_matches('"'));
                self.meet(e, ty);
            }
        }
    }

    /// The Postgres type of an expression's value, where it says.
    fn type_of(&self, expr: &Expr) -> Option<Type> {
        match expr {
            Expr::Identifier(ident) => (self.column)(&ident.value.to_ascii_lowercase()),
            Expr::CompoundIdentifier(parts) => {
                (self.column)(&parts.last()?.value.to_ascii_lowercase())
            }
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) if n.contains(['.', 'e', 'E']) => Some(Type::FLOAT8),
                // As Postgres: an integer literal is int4 when it fits.
                Value::Number(n, _) if n.parse::<i32>().is_ok() => Some(Type::INT4),
                Value::Number(..) => Some(Type::INT8),
                Value::SingleQuotedString(_) => Some(Type::TEXT),
                Value::Boolean(_) => Some(Type::BOOL),
                Value::Placeholder(_) => self.params.get(&placeholder(expr)?).cloned(),
                _ => None,
            },
            Expr::Nested(inner) => self.type_of(inner),
            Expr::Cast { data_type, .. } => types::type_for_decltype(&data_type.to_string()),
            Expr::BinaryOp { left, op, right } => match op {
                BinaryOperator::StringConcat => Some(Type::TEXT),
                BinaryOperator::Plus
                | BinaryOperator::Minus
                | BinaryOperator::Multiply
                | BinaryOperator::Divide
                | BinaryOperator::Modulo => arithmetic(self.type_of(left), self.type_of(right)),
                _ => None,
            },
            Expr::UnaryOp {
                op: UnaryOperator::Minus | UnaryOperator::Plus,
                expr,
            } => self.type_of(expr),
            Expr::Case {
                conditions,
                else_result,
                ..
            } => conditions
                .iter()
                .find_map(|c| self.type_of(&c.result))
                .or_else(|| else_result.as_deref().and_then(|e| self.type_of(e))),
            Expr::Function(f) => self.function_type(&f.name.to_string(), &f.args),
            _ => None,
        }
    }

    fn function_type(&self, name: &str, args: &FunctionArguments) -> Option<Type> {
        let name = name.to_ascii_lowercase();
        let name = name.as_str();
        let first_typed = || arguments(args).iter().find_map(|a| self.type_of(a));
        match name {
            // As Postgres types them: lengths and positions are int4.
            "length" | "octet_length" | "char_length" | "instr" | "unicode" => Some(Type::INT4),
            "count" | "random" | "changes" | "total_changes" | "last_insert_rowid" | "sign"
            | "row_number" | "rank" | "dense_rank" | "ntile" => Some(Type::INT8),
            "avg" | "total" | "julianday" | "round" | "sqrt" | "pow" | "power" | "exp" | "ln"
            | "log" | "log10" | "percent_rank" | "cume_dist" | "unixepoch_real" => {
                Some(Type::FLOAT8)
            }
            "sum" | "abs" | "ceil" | "ceiling" | "floor" | "lag" | "lead" | "first_value"
            | "last_value" | "nth_value" => first_typed(),
            n if SAME_TYPE_FUNCTIONS.contains(&n) => first_typed(),
            "lower" | "upper" | "substr" | "substring" | "trim" | "ltrim" | "rtrim" | "replace"
            | "printf" | "format" | "hex" | "quote" | "group_concat" | "string_agg" | "typeof"
            | "char" | "concat" | "concat_ws" | "date" | "time" | "datetime" | "strftime"
            | "json" | "json_object" | "json_array" | "version" | "current_database"
            | "current_schema" => Some(Type::TEXT),
            "unixepoch" => Some(Type::INT8),
            // The compatibility layer's conversions (`x::bytea`, ...).
            "pg_bytea" => Some(Type::BYTEA),
            "pg_bool" => Some(Type::BOOL),
            "pg_date" => Some(Type::DATE),
            "pg_timestamp" => Some(Type::TIMESTAMP),
            _ => None,
        }
    }
}

/// The type of `a <op> b` for an arithmetic operator: the wider of two
/// numbers, or the one known when the other is not (an untyped parameter).
fn arithmetic(a: Option<Type>, b: Option<Type>) -> Option<Type> {
    const WIDENING: [Type; 4] = [Type::INT4, Type::INT8, Type::NUMERIC, Type::FLOAT8];
    let rank = |t: &Option<Type>| match t {
        Some(t) if *t == Type::INT2 || *t == Type::INT4 => Some(0),
        Some(t) if *t == Type::INT8 => Some(1),
        Some(t) if *t == Type::NUMERIC => Some(2),
        Some(t) if *t == Type::FLOAT4 || *t == Type::FLOAT8 => Some(3),
        _ => None,
    };
    let widest = rank(&a).max(rank(&b))?;
    Some(WIDENING[widest].clone())
}

/// The expressions passed to a function.
fn arguments(args: &FunctionArguments) -> Vec<&Expr> {
    let FunctionArguments::List(list) = args else {
        return Vec::new();
    };
    list.args
        .iter()
        .filter_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect()
}

/// The number of a `$n` or `?n` parameter.
fn placeholder(expr: &Expr) -> Option<usize> {
    let Expr::Value(v) = expr else {
        return None;
    };
    let Value::Placeholder(p) = &v.value else {
        return None;
    };
    p.strip_prefix(['$', '?'])?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(name: &str) -> Option<Type> {
        match name {
            "id" | "n" => Some(Type::INT8),
            "price" => Some(Type::FLOAT8),
            "name" => Some(Type::TEXT),
            _ => None,
        }
    }

    fn inferred(sql: &str) -> Inferred {
        infer(sql, &columns, HashMap::new()).unwrap_or_else(|| panic!("cannot parse {sql}"))
    }

    #[test]
    fn parameters_take_the_type_of_what_they_meet() {
        assert_eq!(inferred("select $1 + 1").params[&1], Type::INT4);
        assert_eq!(inferred("select $1 + 3000000000").params[&1], Type::INT8);
        assert_eq!(inferred("select $1 * 2.5").params[&1], Type::FLOAT8);
        assert_eq!(inferred("select coalesce($1, 1)").params[&1], Type::INT4);
        assert_eq!(inferred("select abs($1)").params[&1], Type::FLOAT8);
        assert_eq!(inferred("select $1 || 'x'").params[&1], Type::TEXT);
        // As Postgres: the literal types the parameter first.
        let nested = inferred("select * from t where price > $1 - 1");
        assert_eq!(nested.params[&1], Type::INT4);
        let compared = inferred("select * from t where price - 1 > $1");
        assert_eq!(compared.params[&1], Type::FLOAT8);
        let insert = inferred("insert into t (id, name) select $1, $2");
        assert_eq!(insert.params[&1], Type::INT8);
        assert_eq!(insert.params[&2], Type::TEXT);
        assert!(inferred("select $1").params.is_empty());
    }

    #[test]
    fn computed_columns_take_the_type_of_their_expression() {
        let typed = inferred(
            "select count(*), id * 2, price + 1, $1 + 1, name || 'x', id = 1, \
             cast(name as integer), avg(n), max(price), x, cast(n as int4) from t",
        );
        assert_eq!(
            typed.columns,
            vec![
                Some(Type::INT8),
                Some(Type::INT8),
                Some(Type::FLOAT8),
                Some(Type::INT4),
                Some(Type::TEXT),
                None,
                Some(Type::INT8),
                Some(Type::FLOAT8),
                Some(Type::FLOAT8),
                None,
                Some(Type::INT4),
            ]
        );
        let returning = inferred("insert into t (n) values (1) returning n + 1, id");
        assert_eq!(returning.columns, vec![Some(Type::INT8), Some(Type::INT8)]);
    }

    #[test]
    fn unreadable_sql_says_nothing() {
        assert_eq!(infer("select from where", &columns, HashMap::new()), None);
    }
}
