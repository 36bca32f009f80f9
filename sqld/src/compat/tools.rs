//! Statements tools such as `pgbench -i` send that SQLite spells
//! otherwise, translated for a simple query (whose text may hold several
//! statements, so one Postgres statement may become a few):
//! `DROP TABLE a, b` and `TRUNCATE a, b` become one statement per table
//! (TRUNCATE as DELETE FROM), `WITH (fillfactor=...)` on CREATE TABLE is
//! dropped, `ALTER TABLE t ADD PRIMARY KEY (c)` becomes a unique index
//! (SQLite cannot add a constraint to a table), and `VACUUM ANALYZE t`
//! becomes `ANALYZE t`. What pg_dump writes is translated too: `public.`
//! qualifiers are dropped (sqld's one schema is SQLite's `main`), `USING
//! btree` on CREATE INDEX is dropped, and `ADD CONSTRAINT` makes the table
//! again (`constraints`).

use std::borrow::Cow;
use std::collections::HashMap;

use sqlparser::ast::{
    AlterTableOperation, CreateTableOptions, ObjectType, Statement, TableConstraint,
};

use super::constraints::{self, TableSchema};
use super::parse::{first_word, parse_one};

const VERBS: &[&str] = &["DROP", "TRUNCATE", "CREATE", "ALTER", "VACUUM"];

/// Whether a simple query may hold such a statement: its first word (the
/// tools send each of them as a query of its own), nothing parsed.
pub fn may_translate(sql: &str) -> bool {
    let verb = first_word(sql);
    VERBS.iter().any(|v| verb.eq_ignore_ascii_case(v))
}

/// The simple query, given as its statements (each with its `;`), in
/// SQLite's terms; `None` when none of them has a translation. Statements
/// without one are kept as the client wrote them. `schemas` holds, by
/// lower-case name, the schema of the tables `constraints::altered_tables`
/// names.
pub fn translate_batch<'a>(
    statements: impl IntoIterator<Item = &'a str>,
    schemas: &HashMap<String, TableSchema>,
) -> Option<String> {
    let mut changed = false;
    let mut out = String::new();
    for piece in statements {
        match translate_one(piece, schemas) {
            Some(translated) => {
                changed = true;
                out.push_str(&translated);
                out.push_str(";\n");
            }
            None => {
                out.push_str(piece);
                out.push('\n');
            }
        }
    }
    changed.then_some(out)
}

fn translate_one(sql: &str, schemas: &HashMap<String, TableSchema>) -> Option<String> {
    if !may_translate(sql) {
        return None;
    }
    if first_word(sql).eq_ignore_ascii_case("VACUUM") {
        return vacuum(sql);
    }
    let unqualified = without_public_schema(sql);
    let statement = parse_one(&unqualified)?;
    match translate(&statement, schemas) {
        Some(pieces) => Some(pieces.join(";\n")),
        None => matches!(unqualified, Cow::Owned(_)).then(|| unqualified.into_owned()),
    }
}

/// `sql` without the `public.` that qualifies names (outside quotes):
/// sqld's one schema is SQLite's `main`, which SQLite does not call
/// `public`.
fn without_public_schema(sql: &str) -> Cow<'_, str> {
    const QUALIFIER: &str = "public.";
    let bytes = sql.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut quote = None;
    for (i, &c) in bytes.iter().enumerate() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None => {
                let starts_word = i == 0
                    || !(bytes[i - 1].is_ascii_alphanumeric() || b"_$.".contains(&bytes[i - 1]));
                let qualifies = bytes.len() > i + QUALIFIER.len()
                    && bytes[i..i + QUALIFIER.len()].eq_ignore_ascii_case(QUALIFIER.as_bytes());
                if starts_word && qualifies {
                    out.push_str(&sql[copied..i]);
                    copied = i + QUALIFIER.len();
                }
            }
        }
    }
    if copied == 0 {
        return Cow::Borrowed(sql);
    }
    out.push_str(&sql[copied..]);
    Cow::Owned(out)
}

/// The statement's translation, if it has one.
fn translate(statement: &Statement, schemas: &HashMap<String, TableSchema>) -> Option<Vec<String>> {
    if let Some((table, constraint)) = constraints::added_constraint(statement) {
        let schema = schemas.get(&table.to_lowercase())?;
        return constraints::rebuild(&table, constraint, schema);
    }
    match statement {
        // SQLite has one kind of index.
        Statement::CreateIndex(index) if index.using.is_some() => {
            let mut index = index.clone();
            index.using = None;
            Some(vec![Statement::CreateIndex(index).to_string()])
        }
        Statement::Drop {
            object_type: ObjectType::Table,
            if_exists,
            names,
            ..
        } if names.len() > 1 => {
            let exists = if *if_exists { "IF EXISTS " } else { "" };
            Some(
                names
                    .iter()
                    .map(|n| format!("DROP TABLE {exists}{n}"))
                    .collect(),
            )
        }
        Statement::Truncate(truncate) => Some(
            truncate
                .table_names
                .iter()
                .map(|t| format!("DELETE FROM {}", t.name))
                .collect(),
        ),
        Statement::CreateTable(create)
            if matches!(create.table_options, CreateTableOptions::With(_)) =>
        {
            let mut create = create.clone();
            create.table_options = CreateTableOptions::None;
            Some(vec![Statement::CreateTable(create).to_string()])
        }
        Statement::AlterTable(alter) => match alter.operations.as_slice() {
            [AlterTableOperation::AddConstraint {
                constraint: TableConstraint::PrimaryKey(key),
                ..
            }] => {
                let table = alter.name.to_string();
                let index = key
                    .name
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| format!("{}_pkey", table.trim_matches('"')));
                let columns: Vec<String> =
                    key.columns.iter().map(|c| c.column.to_string()).collect();
                Some(vec![format!(
                    "CREATE UNIQUE INDEX \"{}\" ON {table} ({})",
                    index.trim_matches('"').replace('"', "\"\""),
                    columns.join(", ")
                )])
            }
            _ => None,
        },
        _ => None,
    }
}

/// `VACUUM [options] [ANALYZE] [table, ...]`: SQLite's VACUUM takes no
/// table (its argument is a schema) and reclaims nothing per table, so a
/// table's statistics are what remains to do. `VACUUM`, `VACUUM main` and
/// `VACUUM INTO` are SQLite's own and left alone.
fn vacuum(sql: &str) -> Option<String> {
    let body = sql.trim().trim_end_matches(';');
    if body.contains(';') {
        return None;
    }
    let words: Vec<&str> = body
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
        .filter(|w| !w.is_empty())
        .skip(1)
        .collect();
    const OPTIONS: &[&str] = &["FULL", "FREEZE", "VERBOSE", "ANALYZE", "ANALYSE"];
    let is_option = |w: &&str| OPTIONS.iter().any(|o| w.eq_ignore_ascii_case(o));
    let sqlite_own = |w: &&str| {
        ["INTO", "MAIN", "TEMP"]
            .iter()
            .any(|k| w.eq_ignore_ascii_case(k))
    };
    if words.is_empty() || words.iter().any(sqlite_own) {
        return None;
    }
    let tables: Vec<&str> = words.iter().filter(|w| !is_option(w)).copied().collect();
    Some(match tables.as_slice() {
        [] => "ANALYZE".to_owned(),
        tables => tables
            .iter()
            .map(|t| format!("ANALYZE {t}"))
            .collect::<Vec<_>>()
            .join(";\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate_one(sql: &str) -> Option<String> {
        super::translate_one(sql, &HashMap::new())
    }

    fn translate_batch<'a>(statements: impl IntoIterator<Item = &'a str>) -> Option<String> {
        super::translate_batch(statements, &HashMap::new())
    }

    #[test]
    fn pg_dump_statements() {
        assert_eq!(
            translate_one("CREATE TABLE public.t (\n    id bigint NOT NULL\n)").as_deref(),
            Some("CREATE TABLE t (\n    id bigint NOT NULL\n)")
        );
        assert_eq!(
            translate_one("CREATE VIEW public.v AS\nselect 'public.x' from \"public.y\"")
                .as_deref(),
            Some("CREATE VIEW v AS\nselect 'public.x' from \"public.y\"")
        );
        assert_eq!(
            translate_one("CREATE INDEX i ON public.t USING btree (a)").as_deref(),
            Some("CREATE INDEX i ON t(a)")
        );
        assert_eq!(translate_one("CREATE TABLE republic.t (a int)"), None);
    }

    #[test]
    fn pgbench_init_statements() {
        assert_eq!(
            translate_one("drop table if exists pgbench_accounts, pgbench_branches").as_deref(),
            Some("DROP TABLE IF EXISTS pgbench_accounts;\nDROP TABLE IF EXISTS pgbench_branches")
        );
        assert_eq!(
            translate_one("truncate table a, b").as_deref(),
            Some("DELETE FROM a;\nDELETE FROM b")
        );
        let created = translate_one(
            "create table pgbench_accounts(aid int not null,bid int,abalance int,filler char(84)) with (fillfactor=100)",
        )
        .unwrap();
        assert!(!created.to_lowercase().contains("fillfactor"), "{created}");
        assert_eq!(
            translate_one("alter table pgbench_branches add primary key (bid)").as_deref(),
            Some("CREATE UNIQUE INDEX \"pgbench_branches_pkey\" ON pgbench_branches (bid)")
        );
        assert_eq!(
            translate_one("vacuum analyze pgbench_branches").as_deref(),
            Some("ANALYZE pgbench_branches")
        );
        assert_eq!(
            translate_one("vacuum pgbench_history").as_deref(),
            Some("ANALYZE pgbench_history")
        );
        assert_eq!(translate_one("vacuum").as_deref(), None);
        assert_eq!(translate_one("vacuum main"), None);
        assert_eq!(translate_one("vacuum into '/x'"), None);
        assert_eq!(translate_one("drop table a"), None);
        assert_eq!(translate_one("select 1"), None);
        assert_eq!(translate_one("create table t(a int)"), None);
        // Statements without a translation keep their text.
        assert_eq!(
            translate_batch(["create table t(a int) without rowid;", "truncate t;"]).as_deref(),
            Some("create table t(a int) without rowid;\nDELETE FROM t;\n")
        );
        assert_eq!(translate_batch(["select 1;", "drop table t;"]), None);
    }
}
