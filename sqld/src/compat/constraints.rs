//! `ALTER TABLE t ADD CONSTRAINT c ...`, as pg_dump adds primary keys,
//! unique constraints, foreign keys and checks after creating a table.
//! SQLite cannot add a constraint to a table, so the table is made again
//! with it (the way SQLite's documentation alters a table): its rows are
//! copied aside, the table dropped and created with the constraint, the
//! rows copied back, and its indexes and triggers created again, all in
//! one transaction, with foreign keys checked at its commit.
//!
//! The translation needs the table's SQL text: the caller looks it up
//! with `SCHEMA_QUERY` for each table `altered_table` names.

use sqlparser::ast::{AlterTableOperation, DataType, Statement, TableConstraint};

/// The SQL SQLite keeps of a table and its own indexes and triggers, as
/// (type, sql) rows; `$1` is the table.
pub const SCHEMA_QUERY: &str = "SELECT type, sql FROM sqlite_schema \
     WHERE tbl_name = $1 COLLATE NOCASE AND sql IS NOT NULL";

/// A table's rows of `SCHEMA_QUERY`.
pub type TableSchema = Vec<(String, String)>;

/// The table a parsed `ALTER TABLE ... ADD CONSTRAINT` adds a constraint
/// to, and the constraint; `None` for other statements and for an
/// unnamed `ADD PRIMARY KEY` (made a unique index, see `tools`).
pub(super) fn added_constraint(statement: &Statement) -> Option<(String, &TableConstraint)> {
    let Statement::AlterTable(alter) = statement else {
        return None;
    };
    let [AlterTableOperation::AddConstraint { constraint, .. }] = alter.operations.as_slice()
    else {
        return None;
    };
    if let TableConstraint::PrimaryKey(key) = constraint {
        key.name.as_ref()?;
    }
    let table = alter.name.0.last()?.to_string();
    Some((table.trim_matches('"').to_owned(), constraint))
}

/// The statements that make `table` again with `constraint` added, given
/// the table's schema rows; `None` if the schema has no such table.
pub(super) fn rebuild(
    table: &str,
    constraint: &TableConstraint,
    schema: &TableSchema,
) -> Option<Vec<String>> {
    let create = schema
        .iter()
        .find(|(kind, _)| kind == "table")
        .map(|(_, sql)| sql)?;
    let with_constraint = match integer_key(create, constraint) {
        Some(made_rowid) => made_rowid,
        None => {
            // The column list ends at the last bracket; table options
            // follow it.
            let end = create.rfind(')')?;
            format!("{}, {constraint}{}", &create[..end], &create[end..])
        }
    };
    let quoted = format!("\"{}\"", table.replace('"', "\"\""));
    let copy = "\"sqld_rebuild\"";
    let mut statements = vec![
        "PRAGMA defer_foreign_keys = ON".to_owned(),
        format!("CREATE TABLE {copy} AS SELECT * FROM {quoted}"),
        format!("DROP TABLE {quoted}"),
        with_constraint,
        format!("INSERT INTO {quoted} SELECT * FROM {copy}"),
        format!("DROP TABLE {copy}"),
    ];
    statements.extend(
        schema
            .iter()
            .filter(|(kind, _)| kind != "table")
            .map(|(_, sql)| sql.clone()),
    );
    Some(statements)
}

/// A primary key of one integer column (`bigint` as pg_dump writes
/// sqld's integers) as SQLite's rowid: the column declared `INTEGER`, so
/// rows keep being numbered when the key is left out, as before the dump.
fn integer_key(create: &str, constraint: &TableConstraint) -> Option<String> {
    let TableConstraint::PrimaryKey(key) = constraint else {
        return None;
    };
    let [column] = key.columns.as_slice() else {
        return None;
    };
    let name = column.column.expr.to_string();
    let Statement::CreateTable(mut table) = super::parse::parse_one(create)? else {
        return None;
    };
    let def = table.columns.iter_mut().find(|c| {
        c.name
            .to_string()
            .eq_ignore_ascii_case(name.trim_matches('"'))
    })?;
    if !def
        .data_type
        .to_string()
        .to_ascii_uppercase()
        .contains("INT")
    {
        return None;
    }
    def.data_type = DataType::Integer(None);
    table.constraints.push(constraint.clone());
    Some(table.to_string())
}

/// The tables whose schema translating `statements` needs.
pub fn altered_tables<'a>(statements: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    statements
        .into_iter()
        .filter(|s| super::parse::first_word(s).eq_ignore_ascii_case("ALTER"))
        .filter_map(super::parse::parse_one)
        .filter_map(|statement| added_constraint(&statement).map(|(table, _)| table))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constraint_is_added_by_making_the_table_again() {
        let statement = super::super::parse::parse_one(
            "ALTER TABLE ONLY child ADD CONSTRAINT child_fkey FOREIGN KEY (p) REFERENCES parent(id)",
        )
        .unwrap();
        let (table, constraint) = added_constraint(&statement).unwrap();
        assert_eq!(table, "child");
        let schema = vec![
            (
                "table".to_owned(),
                "CREATE TABLE child (p bigint) STRICT".to_owned(),
            ),
            (
                "index".to_owned(),
                "CREATE INDEX child_p ON child (p)".to_owned(),
            ),
        ];
        assert_eq!(
            rebuild(&table, constraint, &schema).unwrap(),
            vec![
                "PRAGMA defer_foreign_keys = ON",
                "CREATE TABLE \"sqld_rebuild\" AS SELECT * FROM \"child\"",
                "DROP TABLE \"child\"",
                "CREATE TABLE child (p bigint, CONSTRAINT child_fkey FOREIGN KEY (p) REFERENCES parent(id)) STRICT",
                "INSERT INTO \"child\" SELECT * FROM \"sqld_rebuild\"",
                "DROP TABLE \"sqld_rebuild\"",
                "CREATE INDEX child_p ON child (p)",
            ]
        );
        assert_eq!(rebuild(&table, constraint, &Vec::new()), None);
    }

    #[test]
    fn a_primary_key_of_one_integer_column_becomes_the_rowid() {
        let statement = super::super::parse::parse_one(
            "ALTER TABLE ONLY public.t ADD CONSTRAINT t_pkey PRIMARY KEY (id)",
        )
        .unwrap();
        let (table, constraint) = added_constraint(&statement).unwrap();
        let schema = vec![(
            "table".to_owned(),
            "CREATE TABLE t (id bigint NOT NULL, name text)".to_owned(),
        )];
        assert_eq!(
            rebuild(&table, constraint, &schema).unwrap()[3],
            "CREATE TABLE t (id INTEGER NOT NULL, name TEXT, CONSTRAINT t_pkey PRIMARY KEY (id))"
        );
    }
}
