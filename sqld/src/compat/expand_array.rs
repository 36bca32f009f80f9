//! Set-returning functions over an array in a SELECT list, one row per
//! element: `information_schema._pg_expandarray(array)` (pgjdbc's
//! `getPrimaryKeys` and `getIndexInfo`: the element and its position as
//! `(x, n)`), `unnest(array)` and `generate_subscripts(array, 1)`
//! (SQLAlchemy's reflection of keys). SQLite has no set-returning
//! functions in a SELECT list, so the SELECT that calls them joins
//! `json_each` over the array instead: `(f(a)).n` and
//! `generate_subscripts(a, 1)` are the element's position, `(f(a)).x`,
//! `f(a)` and `unnest(a)` its value, and `(alias.keys).x` read from the
//! outside the value again. As in Postgres, calls over one array in one
//! SELECT list advance together.

use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions_mut, AccessExpr, Expr, FunctionArguments, Query, SetExpr, Statement,
    TableWithJoins, VisitMut, VisitorMut,
};

use super::rewrite::{last_part, raw, raw_table};

const EXPANDARRAY: &str = "_pg_expandarray";
const FUNCTIONS: &[&str] = &[EXPANDARRAY, "unnest", "generate_subscripts"];
/// The alias of the joined elements.
const ELEMENTS: &str = "sqld_elements";

/// Whether `sql` may call it: a scan, before anything is parsed.
pub(super) fn may_call(sql: &str) -> bool {
    FUNCTIONS.iter().any(|f| sql.contains(f))
}

/// Rewrites every SELECT of `statement` that calls the function; whether
/// any did.
pub(super) fn expand(statement: &mut Statement) -> bool {
    let mut expander = Expander { changed: false };
    let _ = statement.visit(&mut expander);
    if expander.changed {
        let _ = visit_expressions_mut(statement, |e| {
            if let Some(inner) = field_of_composite(e, "x") {
                *e = inner;
            }
            ControlFlow::<()>::Continue(())
        });
    }
    expander.changed
}

struct Expander {
    changed: bool,
}

impl VisitorMut for Expander {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        let mut elements = Elements { array: None };
        for item in &mut select.projection {
            let _ = item.visit(&mut elements);
        }
        if let Some(array) = elements.array {
            select.from.push(TableWithJoins {
                relation: raw_table(format!("json_each(pg_array_json({array}))"), Some(ELEMENTS)),
                joins: Vec::new(),
            });
            self.changed = true;
        }
        ControlFlow::Continue(())
    }
}

/// The calls in one SELECT list, replaced before their arguments are seen
/// (`(f(a)).n` is replaced whole, not `f(a)` inside it).
struct Elements {
    array: Option<String>,
}

impl VisitorMut for Elements {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some(replaced) = element_expr(expr, &mut self.array) {
            *expr = replaced;
        }
        ControlFlow::Continue(())
    }
}

/// What replaces `expr` if it is a call of the function or a field of
/// one; the first call's array is noted in `array` (pgjdbc's queries
/// expand one array per SELECT).
fn element_expr(expr: &Expr, array: &mut Option<String>) -> Option<Expr> {
    let (call, field) = match expr {
        Expr::CompoundFieldAccess { root, access_chain } => {
            let [AccessExpr::Dot(Expr::Identifier(field))] = access_chain.as_slice() else {
                return None;
            };
            (unnested(root), Some(field.value.to_ascii_lowercase()))
        }
        other => (other, None),
    };
    let Expr::Function(f) = call else {
        return None;
    };
    let name = last_part(&f.name).to_ascii_lowercase();
    if !FUNCTIONS.contains(&name.as_str()) {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let (first, rest) = list.args.split_first()?;
    const POSITION: &str = "sqld_elements.key + 1";
    let replacement = match (name.as_str(), rest, field.as_deref()) {
        (EXPANDARRAY, [], Some("n")) => format!("({POSITION})"),
        (EXPANDARRAY, [], Some("x") | None) | ("unnest", [], None) => {
            format!("{ELEMENTS}.value")
        }
        // The catalog's arrays have one dimension. The argument stays in
        // the text: drivers pass it as a parameter, and the statement's
        // parameters must stay the ones the client numbered.
        ("generate_subscripts", [dimension], None) => {
            format!("(CASE WHEN {dimension} IS NULL THEN NULL ELSE {POSITION} END)")
        }
        _ => return None,
    };
    let first = first.to_string();
    // One array per SELECT list: a second one is left to fail as before.
    if array.get_or_insert_with(|| first.clone()) != &first {
        return None;
    }
    Some(raw(replacement))
}

/// `(composite).field` on an expression that is not a call: the
/// composite, which the expansion made the value itself.
fn field_of_composite(expr: &Expr, wanted: &str) -> Option<Expr> {
    let Expr::CompoundFieldAccess { root, access_chain } = expr else {
        return None;
    };
    let [AccessExpr::Dot(Expr::Identifier(field))] = access_chain.as_slice() else {
        return None;
    };
    let inner = unnested(root);
    (field.value.eq_ignore_ascii_case(wanted)
        && matches!(inner, Expr::Identifier(_) | Expr::CompoundIdentifier(_)))
    .then(|| inner.clone())
}

fn unnested(expr: &Expr) -> &Expr {
    match expr {
        Expr::Nested(inner) => unnested(inner),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use crate::compat::rewrite;

    #[test]
    fn a_select_list_expansion_becomes_a_join() {
        let sql = "SELECT r.k FROM (SELECT (information_schema._pg_expandarray(i.indkey)).n AS k, \
                   information_schema._pg_expandarray(i.indkey) AS keys, a.attnum AS num \
                   FROM pg_catalog.pg_index i, pg_catalog.pg_attribute a) r WHERE r.num = (r.keys).x";
        assert_eq!(
            rewrite(sql).unwrap(),
            "SELECT r.k FROM (SELECT (sqld_elements.key + 1) AS k, \
             sqld_elements.value AS keys, a.attnum AS num \
             FROM pg_catalog.pg_index i, pg_catalog.pg_attribute a, \
             json_each(pg_array_json(i.indkey)) AS sqld_elements) r \
             WHERE r.num = r.keys"
        );
    }
}
