//! The rewrite itself: parse with the PostgreSQL dialect, replace the
//! expressions SQLite would misread, print the statement back.
//!
//! A replaced expression becomes a bare identifier holding SQLite text:
//! `sqlparser` prints an unquoted identifier as it is, so the printed
//! statement carries the replacement verbatim, and an enclosing
//! expression (itself rewritten later, children first) prints it inside
//! its own text.

use std::ops::ControlFlow;

use sqlparser::ast::{
    AccessExpr, BinaryOperator, CastKind, DataType, Expr, FunctionArguments, Ident, ObjectName,
    ObjectNamePart, SelectItem, SetExpr, Statement, Subscript, TableAlias, TableFactor,
    TrimWhereField, Value, VisitMut, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::{casts, expand_array};

/// The statement in SQLite's terms, or `None` when there is nothing to
/// change (or the parser cannot read it: SQLite then gives its own error).
pub fn rewrite(sql: &str) -> Option<String> {
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    let names: Vec<Vec<Option<(String, String)>>> =
        statements.iter_mut().map(column_names).collect();
    let mut expanded = false;
    if expand_array::may_call(sql) {
        for statement in &mut statements {
            expanded |= expand_array::expand(statement);
        }
    }
    let mut rewriter = Rewriter { changed: false };
    let _ = statements.visit(&mut rewriter);
    if !rewriter.changed && !expanded {
        return None;
    }
    for (statement, names) in statements.iter_mut().zip(names) {
        keep_column_names(statement, names);
    }
    let printed: Vec<String> = statements.iter().map(ToString::to_string).collect();
    Some(printed.join(";\n"))
}

/// The result columns of a query's top SELECT, where it has one.
fn projection(statement: &mut Statement) -> Option<&mut Vec<SelectItem>> {
    let Statement::Query(query) = statement else {
        return None;
    };
    match query.body.as_mut() {
        SetExpr::Select(select) => Some(&mut select.projection),
        _ => None,
    }
}

/// For each unnamed result column: its text before the rewrite and the
/// name Postgres gives it.
fn column_names(statement: &mut Statement) -> Vec<Option<(String, String)>> {
    let Some(items) = projection(statement) else {
        return Vec::new();
    };
    items
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) => Some((e.to_string(), postgres_name(e))),
            _ => None,
        })
        .collect()
}

/// A rewritten result column is named as Postgres names it (`version`,
/// `int4`, `?column?`), not after the SQLite text that replaced it.
fn keep_column_names(statement: &mut Statement, names: Vec<Option<(String, String)>>) {
    let Some(items) = projection(statement) else {
        return;
    };
    for (item, name) in items.iter_mut().zip(names) {
        let (Some((before, name)), SelectItem::UnnamedExpr(e)) = (name, &*item) else {
            continue;
        };
        if e.to_string() != before {
            *item = SelectItem::ExprWithAlias {
                expr: e.clone(),
                alias: Ident::with_quote('"', name),
            };
        }
    }
}

/// The column name Postgres derives from an expression.
fn postgres_name(expr: &Expr) -> String {
    match expr {
        Expr::Function(f) => last_part(&f.name).to_ascii_lowercase(),
        Expr::Identifier(ident) => ident.value.clone(),
        Expr::CompoundIdentifier(parts) => {
            parts.last().map_or_else(String::new, |i| i.value.clone())
        }
        Expr::Nested(inner) => postgres_name(inner),
        // A cast keeps the name of the column or function it casts (through
        // any further casts), else takes its type's.
        Expr::Cast {
            expr, data_type, ..
        } => {
            let mut base = expr.as_ref();
            while let Expr::Cast { expr, .. } | Expr::Nested(expr) = base {
                base = expr;
            }
            match base {
                Expr::Identifier(_) | Expr::CompoundIdentifier(_) | Expr::Function(_) => {
                    postgres_name(base)
                }
                _ => casts::postgres_type_name(data_type),
            }
        }
        _ => "?column?".to_owned(),
    }
}

struct Rewriter {
    changed: bool,
}

impl VisitorMut for Rewriter {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        // `x::regtype::text` names a type: seen before its inner cast is
        // rewritten, which would lose the `regtype`.
        if let Expr::Cast {
            expr: inner,
            data_type,
            ..
        } = expr
        {
            if casts::is_text(data_type) {
                if let Expr::Cast {
                    expr: oid,
                    data_type: DataType::Custom(name, _),
                    ..
                } = inner.as_ref()
                {
                    if last_part(name).eq_ignore_ascii_case("regtype") {
                        *expr = raw(format!("format_type({oid}, NULL)"));
                        self.changed = true;
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_statement(&mut self, statement: &mut Statement) -> ControlFlow<()> {
        if let Statement::CreateTable(table) = statement {
            for column in &mut table.columns {
                if is_serial(&column.data_type) {
                    // An INTEGER primary key is SQLite's rowid, which numbers
                    // rows as a sequence would (a BIGINT one is not).
                    column.data_type = DataType::Integer(None);
                    self.changed = true;
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let Some(renamed) = derived_with_column_names(factor) {
            *factor = renamed;
            self.changed = true;
            return ControlFlow::Continue(());
        }
        if let Some(derived) = table_function(factor) {
            *factor = derived;
            self.changed = true;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some(replacement) = replacement(expr) {
            *expr = replacement;
            self.changed = true;
        }
        ControlFlow::Continue(())
    }
}

/// What replaces `expr`, if SQLite would misread it.
fn replacement(expr: &mut Expr) -> Option<Expr> {
    Some(match expr {
        Expr::Cast {
            kind: CastKind::DoubleColon | CastKind::Cast,
            expr: inner,
            data_type,
            ..
        } => raw(casts::convert(inner, data_type)),
        Expr::TypedString(typed) => raw(casts::convert(
            &Expr::Value(typed.value.clone()),
            &typed.data_type,
        )),
        Expr::Value(v) => match &v.value {
            Value::EscapedStringLiteral(s) => {
                let mut plain = v.clone();
                plain.value = Value::SingleQuotedString(s.clone());
                Expr::Value(plain)
            }
            _ => return None,
        },
        Expr::AnyOp {
            left,
            compare_op,
            right,
            ..
        } => raw(membership(left, compare_op, right, false)?),
        Expr::AllOp {
            left,
            compare_op,
            right,
        } => raw(membership(left, compare_op, right, true)?),
        Expr::BinaryOp { left, op, right } => raw(binary(left, op, right)?),
        Expr::ILike {
            negated,
            expr: inner,
            pattern,
            escape_char,
            ..
        } => {
            // SQLite's LIKE ignores ASCII case already.
            let not = if *negated { "NOT " } else { "" };
            let escape = escape_char
                .as_ref()
                .map(|e| format!(" ESCAPE {e}"))
                .unwrap_or_default();
            raw(format!("({inner} {not}LIKE {pattern}{escape})"))
        }
        Expr::Collate {
            expr: inner,
            collation,
        } => {
            let name = last_part(collation).to_ascii_lowercase();
            match name.as_str() {
                "default" | "c" | "posix" | "ucs_basic" => raw(format!("{inner}")),
                _ => return None,
            }
        }
        Expr::Function(f) if last_part(&f.name).eq_ignore_ascii_case("array") => {
            let FunctionArguments::Subquery(query) = &f.args else {
                return None;
            };
            // Postgres' array text of the subquery's rows.
            raw(format!(
                "(WITH sqld_array(v) AS ({query}) \
                 SELECT '{{' || coalesce(group_concat(v, ','), '') || '}}' FROM sqld_array)"
            ))
        }
        Expr::Function(f) if sqlite_name(last_part(&f.name)).is_some() => {
            let mut renamed = f.clone();
            let name = sqlite_name(last_part(&f.name)).unwrap_or_default();
            renamed.name = ObjectName::from(vec![Ident::new(name)]);
            Expr::Function(renamed)
        }
        Expr::Function(f) => {
            let qualified =
                f.name.0.len() == 2 && part(&f.name, 0).eq_ignore_ascii_case("pg_catalog");
            if qualified {
                f.name.0.remove(0);
            }
            if let Some(lookup) = catalog_lookup(f) {
                return Some(raw(lookup));
            }
            if matches!(f.args, FunctionArguments::None) && is_niladic(last_part(&f.name)) {
                return Some(raw(format!(
                    "{}()",
                    last_part(&f.name).to_ascii_lowercase()
                )));
            }
            if !qualified {
                return None;
            }
            Expr::Function(f.clone())
        }
        Expr::CompoundFieldAccess { root, access_chain } => {
            // `array[i]` (also `alias.array[i]`): the item of Postgres'
            // array text.
            let (Some(AccessExpr::Subscript(Subscript::Index { index })), fields) =
                (access_chain.last(), &access_chain[..access_chain.len() - 1])
            else {
                return None;
            };
            let mut array = root.to_string();
            for field in fields {
                let AccessExpr::Dot(Expr::Identifier(name)) = field else {
                    return None;
                };
                array = format!("{array}.{name}");
            }
            raw(format!("pg_array_item({array}, {index})"))
        }
        Expr::Trim {
            expr: inner,
            trim_where,
            trim_what,
            trim_characters: None,
        } if trim_where.is_some() || trim_what.is_some() => {
            // SQLite's trim(x, characters), ltrim and rtrim.
            let function = match trim_where {
                Some(TrimWhereField::Leading) => "ltrim",
                Some(TrimWhereField::Trailing) => "rtrim",
                _ => "trim",
            };
            match trim_what {
                Some(what) => raw(format!("{function}({inner}, {what})")),
                None => raw(format!("{function}({inner})")),
            }
        }
        Expr::Identifier(ident) if ident.quote_style.is_none() && is_niladic(&ident.value) => {
            raw(format!("{}()", ident.value.to_ascii_lowercase()))
        }
        _ => return None,
    })
}

/// `(subquery) AS t(a, b)`, which SQLite cannot name columns in (SQLAlchemy
/// sends `(VALUES ...) AS imp_sen(p0, p1, ...)` for every batch of ORM
/// inserts), as a subquery whose common table expression names them.
fn derived_with_column_names(factor: &TableFactor) -> Option<TableFactor> {
    let TableFactor::Derived {
        lateral: false,
        subquery,
        alias: Some(alias),
        ..
    } = factor
    else {
        return None;
    };
    if alias.columns.is_empty() {
        return None;
    }
    let columns: Vec<String> = alias.columns.iter().map(|c| c.name.to_string()).collect();
    let named = format!(
        "(WITH sqld_derived({}) AS ({subquery}) SELECT * FROM sqld_derived)",
        columns.join(", ")
    );
    let mut alias = alias.clone();
    alias.columns.clear();
    let mut factor = raw_table(named, None);
    if let TableFactor::Table { alias: slot, .. } = &mut factor {
        *slot = Some(alias);
    }
    Some(factor)
}

/// A table factor that prints as `sql` (a subquery or a table-valued
/// function call in SQLite's terms), with an optional alias.
pub(super) fn raw_table(sql: String, alias: Option<&str>) -> TableFactor {
    TableFactor::Table {
        name: ObjectName::from(vec![Ident::new(sql)]),
        alias: alias.map(|a| TableAlias {
            explicit: true,
            name: Ident::new(a),
            columns: Vec::new(),
            at: None,
        }),
        args: None,
        with_hints: Vec::new(),
        version: None,
        with_ordinality: false,
        partitions: Vec::new(),
        json_path: None,
        sample: None,
        index_directives: Vec::new(),
        inheritance: None,
    }
}

/// `serial`, `bigserial` and their aliases: Postgres' auto-numbered
/// integer columns.
fn is_serial(data_type: &DataType) -> bool {
    const SERIALS: &[&str] = &[
        "serial",
        "serial4",
        "bigserial",
        "serial8",
        "smallserial",
        "serial2",
    ];
    matches!(data_type, DataType::Custom(name, args)
        if args.is_empty() && SERIALS.iter().any(|s| last_part(name).eq_ignore_ascii_case(s)))
}

/// Postgres' set-returning functions in FROM, which SQLite here lacks, as
/// subqueries: `generate_series(start, stop)`, `unnest(array)`,
/// `pg_options_to_table(options)` (over the array's text) and
/// `pg_partition_ancestors(relation)`. Their columns
/// are named as in Postgres: after the alias's column list, else the
/// alias, else the function.
fn table_function(factor: &TableFactor) -> Option<TableFactor> {
    let (function, args, alias) = match factor {
        TableFactor::Table {
            name,
            args: Some(args),
            alias,
            ..
        } => {
            let args: Vec<String> = args.args.iter().map(ToString::to_string).collect();
            (last_part(name).to_ascii_lowercase(), args, alias)
        }
        TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset: false,
            with_ordinality: false,
            ..
        } => {
            let args = array_exprs.iter().map(ToString::to_string).collect();
            ("unnest".to_owned(), args, alias)
        }
        _ => return None,
    };
    let column = |i: usize, default: &str| match alias {
        Some(a) if a.columns.len() > i => a.columns[i].name.to_string(),
        Some(a) if a.columns.is_empty() && i == 0 => a.name.to_string(),
        _ => default.to_owned(),
    };
    let query = match (function.as_str(), args.as_slice()) {
        ("generate_series", [start, stop]) => format!(
            "WITH RECURSIVE sqld_series(v) AS (SELECT {start} UNION ALL \
             SELECT v + 1 FROM sqld_series WHERE v < {stop}) SELECT v AS {} FROM sqld_series",
            column(0, "generate_series")
        ),
        ("unnest", [array]) => format!(
            "SELECT value AS {} FROM json_each(pg_array_json({array}))",
            column(0, "unnest")
        ),
        ("pg_options_to_table", [options]) => format!(
            "SELECT substr(value, 1, instr(value, '=') - 1) AS {}, \
             substr(value, instr(value, '=') + 1) AS {} FROM json_each(pg_array_json({options}))",
            column(0, "option_name"),
            column(1, "option_value")
        ),
        // No partitions: a relation is its own only ancestor (with its
        // ordinality, as `WITH ORDINALITY` asks).
        ("pg_partition_ancestors", [relation]) => format!(
            "SELECT {relation} AS {}, 1 AS {}",
            column(0, "relid"),
            column(1, "ordinality")
        ),
        _ => return None,
    };
    let subquery = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&query)
        .and_then(|mut p| p.parse_query())
        .ok()?;
    let alias = alias.clone().map(|mut a| {
        a.columns.clear();
        a
    });
    Some(TableFactor::Derived {
        lateral: false,
        subquery,
        alias,
        sample: None,
    })
}

/// Catalog functions that look an object up (`pg_get_indexdef(oid)`,
/// `pg_get_constraintdef(oid)`, `pg_get_viewdef(oid)`): a scalar subquery on the catalog views,
/// since a SQL function cannot query.
fn catalog_lookup(f: &sqlparser::ast::Function) -> Option<String> {
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let oid = list.args.first()?;
    let function = last_part(&f.name).to_ascii_lowercase();
    // pg_get_indexdef(oid, column, pretty): the column's name (0: the
    // whole definition).
    if let ("pg_get_indexdef", Some(column)) = (function.as_str(), list.args.get(1)) {
        return Some(format!(
            "(SELECT CASE WHEN {column} = 0 THEN d.indexdef \
             ELSE pg_array_item('{{' || replace(i.columns, ', ', ',') || '}}', {column}) END \
             FROM pg_catalog.sqld_indexes AS i JOIN pg_catalog.sqld_index_definitions AS d \
             ON d.oid = pg_relation_oid(i.index_name) WHERE d.oid = {oid})"
        ));
    }
    let (column, view) = match function.as_str() {
        "pg_get_indexdef" => ("indexdef", "sqld_index_definitions"),
        "pg_get_constraintdef" => ("sqld_definition", "pg_constraint"),
        "pg_get_viewdef" => ("definition", "sqld_view_definitions"),
        _ => return None,
    };
    Some(format!(
        "(SELECT {column} FROM pg_catalog.{view} WHERE oid = {oid})"
    ))
}

/// SQLite's name for a Postgres function that takes the same arguments.
fn sqlite_name(postgres: &str) -> Option<&'static str> {
    match postgres.to_ascii_lowercase().as_str() {
        "string_agg" => Some("group_concat"),
        "json_build_object" | "jsonb_build_object" => Some("json_object"),
        "json_build_array" | "jsonb_build_array" => Some("json_array"),
        "json_agg" | "jsonb_agg" => Some("json_group_array"),
        // Over SQLite's booleans, 1 and 0.
        "bool_and" | "every" => Some("min"),
        "bool_or" => Some("max"),
        _ => None,
    }
}

/// Postgres functions called without parentheses that sqld provides as
/// ordinary functions.
fn is_niladic(name: &str) -> bool {
    [
        "current_user",
        "session_user",
        "current_role",
        "current_schema",
        "current_catalog",
    ]
    .iter()
    .any(|n| name.eq_ignore_ascii_case(n))
}

/// `x = ANY(ARRAY[...])` is `x IN (...)`; `x <> ALL(ARRAY[...])` is
/// `x NOT IN (...)`; a subquery works the same way.
fn membership(left: &Expr, op: &BinaryOperator, right: &Expr, all: bool) -> Option<String> {
    let negated = match (op, all) {
        (BinaryOperator::Eq, false) => "",
        (BinaryOperator::NotEq, true) => "NOT ",
        _ => return None,
    };
    let inner = match right {
        Expr::Nested(e) => e.as_ref(),
        e => e,
    };
    let list = match inner {
        Expr::Array(array) => {
            let items: Vec<String> = array.elem.iter().map(ToString::to_string).collect();
            items.join(", ")
        }
        Expr::Subquery(query) => query.to_string(),
        // An array value (a column, a parameter): its Postgres text.
        _ if !all => return Some(format!("pg_array_contains({inner}, {left})")),
        _ => return None,
    };
    Some(format!("({left} {negated}IN ({list}))"))
}

/// Regular expression operators (`~`, `~*`, `!~`, `!~*`, and their
/// `OPERATOR(pg_catalog.x)` spellings) as calls of `regexp`, and other
/// `OPERATOR(pg_catalog.x)` spellings as the bare operator.
fn binary(left: &Expr, op: &BinaryOperator, right: &Expr) -> Option<String> {
    let symbol = match op {
        BinaryOperator::PGRegexMatch => "~".to_owned(),
        BinaryOperator::PGRegexIMatch => "~*".to_owned(),
        BinaryOperator::PGRegexNotMatch => "!~".to_owned(),
        BinaryOperator::PGRegexNotIMatch => "!~*".to_owned(),
        BinaryOperator::PGCustomBinaryOperator(parts) => parts.last()?.clone(),
        _ => return None,
    };
    let (not, case) = match symbol.as_str() {
        "~" => ("", ""),
        "~*" => ("", "(?i)"),
        "!~" => ("NOT ", ""),
        "!~*" => ("NOT ", "(?i)"),
        "=" | "<>" | "!=" | "<" | "<=" | ">" | ">=" | "+" | "-" | "*" | "/" | "||" => {
            return Some(format!("({left} {symbol} {right})"))
        }
        _ => return None,
    };
    let pattern = if case.is_empty() {
        right.to_string()
    } else {
        format!("'{case}' || {right}")
    };
    Some(format!("({not}regexp({pattern}, {left}))"))
}

/// An expression printed as `sql`, verbatim.
pub(super) fn raw(sql: String) -> Expr {
    Expr::Identifier(Ident::new(sql))
}

fn part(name: &ObjectName, i: usize) -> &str {
    match name.0.get(i) {
        Some(ObjectNamePart::Identifier(ident)) => &ident.value,
        _ => "",
    }
}

pub(super) fn last_part(name: &ObjectName) -> &str {
    part(name, name.0.len().saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    fn sqlite(sql: &str) -> String {
        rewrite(sql).unwrap_or_else(|| sql.to_owned())
    }

    #[test]
    fn casts_become_conversions() {
        assert_eq!(
            sqlite("SELECT $1::integer"),
            "SELECT CAST($1 AS INT4) AS \"int4\""
        );
        assert_eq!(
            sqlite("SELECT '\\x0102'::bytea AS b"),
            "SELECT pg_bytea('\\x0102') AS b"
        );
        assert_eq!(
            sqlite("SELECT oid::regtype::text FROM pg_type"),
            "SELECT format_type(oid, NULL) AS \"oid\" FROM pg_type"
        );
    }

    #[test]
    fn derived_tables_name_their_columns_through_a_cte() {
        assert_eq!(
            sqlite("SELECT p0 FROM (VALUES ($1::VARCHAR, 0)) AS imp_sen(p0, n) ORDER BY n"),
            "SELECT p0 FROM (WITH sqld_derived(p0, n) AS (VALUES (CAST($1 AS TEXT), 0)) \
             SELECT * FROM sqld_derived) AS imp_sen ORDER BY n"
        );
    }

    #[test]
    fn serial_columns_become_integer_keys() {
        assert_eq!(
            sqlite("CREATE TABLE t (id SERIAL NOT NULL, b BIGSERIAL, PRIMARY KEY (id))"),
            "CREATE TABLE t (id INTEGER NOT NULL, b INTEGER, PRIMARY KEY (id))"
        );
    }

    #[test]
    fn postgres_operators_become_sqlite() {
        assert_eq!(
            sqlite("SELECT 2 = ANY(ARRAY[1, 2])"),
            "SELECT (2 IN (1, 2)) AS \"?column?\""
        );
        assert_eq!(
            sqlite("SELECT 1 WHERE 2 = ANY(ARRAY[1, 2])"),
            "SELECT 1 WHERE (2 IN (1, 2))"
        );
        assert_eq!(
            sqlite("SELECT 1 WHERE 'ab' OPERATOR(pg_catalog.~) '^a' COLLATE pg_catalog.default"),
            "SELECT 1 WHERE (regexp('^a', 'ab'))"
        );
        assert_eq!(
            sqlite("SELECT 1 WHERE 'a' !~ 'b'"),
            "SELECT 1 WHERE (NOT regexp('b', 'a'))"
        );
        assert_eq!(sqlite("SELECT E'it''s' AS s"), "SELECT 'it''s' AS s");
        assert_eq!(
            sqlite("SELECT pg_catalog.version()"),
            "SELECT version() AS \"version\""
        );
        assert_eq!(
            sqlite("SELECT current_user"),
            "SELECT current_user() AS \"current_user\""
        );
    }

    #[test]
    fn plain_sqlite_is_left_alone() {
        assert_eq!(rewrite("SELECT ~5"), None);
        assert_eq!(rewrite("not sql at all ::"), None);
    }
}
