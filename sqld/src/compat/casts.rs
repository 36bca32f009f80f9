//! `expr::type` (and `CAST(expr AS type)` to a Postgres type) as a SQLite
//! expression that converts: a CAST to the type's affinity, or one of the
//! conversion functions the catalog registers (`pg_bytea` reads
//! Postgres' `\x` hex text, `pg_bool` its spellings of true and false,
//! `pg_date`/`pg_timestamp` normalize to the text Postgres prints). Types
//! SQLite has no use for (`json`, `uuid`, arrays, ...) keep the value as
//! it is.

use sqlparser::ast::{DataType, Expr};

/// The SQLite expression for `expr` cast to `ty`.
pub(super) fn convert(expr: &Expr, ty: &DataType) -> String {
    let name = type_name(ty);
    let is_literal = matches!(expr, Expr::Value(_));
    match name.as_str() {
        // Spelled with their size, which SQLite reads as integer affinity
        // and the result's description as Postgres' type (`int4`).
        "int" | "integer" | "int4" => format!("CAST({expr} AS INT4)"),
        "int2" | "smallint" => format!("CAST({expr} AS INT2)"),
        "int8" | "bigint" | "oid" | "xid" => format!("CAST({expr} AS INTEGER)"),
        "real" | "float" | "float4" | "float8" | "double precision" => {
            format!("CAST({expr} AS REAL)")
        }
        "numeric" | "decimal" => format!("CAST({expr} AS NUMERIC)"),
        "text" | "varchar" | "character varying" | "char" | "character" | "name" | "bpchar" => {
            format!("CAST({expr} AS TEXT)")
        }
        "bytea" => format!("pg_bytea({expr})"),
        "bool" | "boolean" => format!("pg_bool({expr})"),
        "date" => format!("pg_date({expr})"),
        "timestamp"
        | "timestamp without time zone"
        | "timestamptz"
        | "timestamp with time zone" => format!("pg_timestamp({expr})"),
        "regtype" if is_literal => format!("to_regtype({expr})"),
        "regclass" if is_literal => format!("to_regclass({expr})"),
        _ => format!("{expr}"),
    }
}

/// The name Postgres gives `ty` (and a column cast to it): `int4` for
/// `integer`, `bool` for `boolean`, ...
pub(super) fn postgres_type_name(ty: &DataType) -> String {
    let name = type_name(ty);
    match name.as_str() {
        "int" | "integer" => "int4",
        "bigint" => "int8",
        "smallint" => "int2",
        "boolean" => "bool",
        "real" => "float4",
        "float" | "double precision" => "float8",
        "character varying" => "varchar",
        "character" | "char" => "bpchar",
        "decimal" => "numeric",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        other => other,
    }
    .to_owned()
}

/// Whether `ty` is one of the text types.
pub(super) fn is_text(ty: &DataType) -> bool {
    matches!(type_name(ty).as_str(), "text" | "varchar" | "name")
}

/// The type's name in lower case, without `pg_catalog.` or modifiers
/// (`varchar(20)` is `varchar`); an array type keeps its `[]`.
fn type_name(ty: &DataType) -> String {
    let printed = ty.to_string().to_ascii_lowercase();
    let unqualified = printed.strip_prefix("pg_catalog.").unwrap_or(&printed);
    let base = match unqualified.find('(') {
        Some(at) if !unqualified.ends_with("[]") => &unqualified[..at],
        _ => unqualified,
    };
    base.trim().to_owned()
}
