//! The functions of Postgres' catalog and the conversions the
//! compatibility layer's casts call (`pg_bytea`, `pg_bool`, `pg_date`,
//! `pg_timestamp`), registered on every session connection. What only a
//! session knows (its settings, its advisory locks) is registered by the
//! session itself.

use libsql_sys::rusqlite::functions::{Context, FunctionFlags};
use libsql_sys::rusqlite::types::{Value, ValueRef};
use libsql_sys::rusqlite::{Connection, Error, Result};
use pgwire::api::Type;

use super::TYPES;

/// The comments objects have, as (object OID, catalog OID, text):
/// `pg_description`, `obj_description`.
pub(super) const DESCRIPTIONS: &[(i64, i64, &str)] = &[(
    super::PUBLIC_NAMESPACE_OID,
    NAMESPACE_CATALOG_OID,
    "standard public schema",
)];
const NAMESPACE_CATALOG_OID: i64 = 2615;

/// The owner every object is reported to have.
pub(super) const OWNER: &str = "sqld";
/// OIDs of user relations start here, as in Postgres.
const FIRST_USER_OID: u32 = 16384;

/// The OIDs Postgres gives the system catalogs that tools name (as
/// `tableoid`, `classoid`, `'pg_class'::regclass`).
const SYSTEM_CATALOG_OIDS: &[(&str, i64)] = &[
    ("pg_aggregate", 2600),
    ("pg_am", 2601),
    ("pg_amop", 2602),
    ("pg_amproc", 2603),
    ("pg_attrdef", 2604),
    ("pg_authid", 1260),
    ("pg_cast", 2605),
    ("pg_class", 1259),
    ("pg_collation", 3456),
    ("pg_constraint", 2606),
    ("pg_conversion", 2607),
    ("pg_database", 1262),
    ("pg_default_acl", 826),
    ("pg_depend", 2608),
    ("pg_description", 2609),
    ("pg_enum", 3501),
    ("pg_event_trigger", 3466),
    ("pg_extension", 3079),
    ("pg_foreign_data_wrapper", 2328),
    ("pg_foreign_server", 1417),
    ("pg_foreign_table", 3118),
    ("pg_index", 2610),
    ("pg_inherits", 2611),
    ("pg_init_privs", 3394),
    ("pg_language", 2612),
    ("pg_largeobject_metadata", 2995),
    ("pg_namespace", NAMESPACE_CATALOG_OID),
    ("pg_opclass", 2616),
    ("pg_operator", 2617),
    ("pg_opfamily", 2753),
    ("pg_policy", 3256),
    ("pg_proc", 1255),
    ("pg_publication", 6104),
    ("pg_publication_namespace", 6237),
    ("pg_publication_rel", 6106),
    ("pg_range", 3541),
    ("pg_rewrite", 2618),
    ("pg_seclabel", 3596),
    ("pg_shdescription", 2396),
    ("pg_shseclabel", 3592),
    ("pg_statistic_ext", 3381),
    ("pg_subscription", 6100),
    ("pg_tablespace", 1213),
    ("pg_transform", 3576),
    ("pg_trigger", 2620),
    ("pg_ts_config", 3602),
    ("pg_ts_dict", 3600),
    ("pg_ts_parser", 3601),
    ("pg_ts_template", 3764),
    ("pg_type", 1247),
    ("pg_user_mapping", 1418),
];

/// A stable OID for the relation called `name`: the same in every
/// session and across restarts (Postgres numbers relations as they are
/// created; sqld derives the number from the name). A system catalog has
/// its Postgres OID.
pub fn relation_oid(name: &str) -> i64 {
    let name = name.strip_prefix("pg_catalog.").unwrap_or(name);
    if let Some((_, oid)) = SYSTEM_CATALOG_OIDS
        .iter()
        .find(|(catalog, _)| catalog.eq_ignore_ascii_case(name))
    {
        return *oid;
    }
    let hash = crc32fast::hash(name.to_ascii_lowercase().as_bytes());
    i64::from(FIRST_USER_OID + hash % (i32::MAX as u32 - FIRST_USER_OID))
}

/// The name Postgres would give an index SQLite made for a constraint;
/// an index the user named keeps its name.
fn index_name(table: &str, index: &str, origin: &str, columns: Option<&str>) -> String {
    if !index.starts_with("sqlite_autoindex_") {
        return index.to_owned();
    }
    match origin {
        "pk" => format!("{table}_pkey"),
        _ => format!("{table}_{}_key", columns.unwrap_or("")),
    }
}

fn user_error(message: String) -> Error {
    Error::UserFunctionError(message.into())
}

pub(super) fn install(conn: &Connection) -> Result<()> {
    let pure = || FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("regexp", 2, pure(), regexp)?;
    conn.create_scalar_function("pg_bytea", 1, pure(), |ctx| bytea(ctx.get_raw(0)))?;
    conn.create_scalar_function("pg_bool", 1, pure(), |ctx| boolean(ctx.get_raw(0)))?;
    conn.create_scalar_function("pg_date", 1, pure(), |ctx| {
        datetime(ctx.get_raw(0), |s| {
            s.split([' ', 'T']).next().unwrap_or(s).to_owned()
        })
    })?;
    conn.create_scalar_function("pg_timestamp", 1, pure(), |ctx| {
        datetime(ctx.get_raw(0), |s| match s.find('T') {
            Some(10) => s.replacen('T', " ", 1),
            _ if s.len() == 10 => format!("{s} 00:00:00"),
            _ => s.to_owned(),
        })
    })?;
    conn.create_scalar_function("sqld_index_name", 4, pure(), |ctx| {
        let (table, index, origin): (String, String, String) =
            (ctx.get(0)?, ctx.get(1)?, ctx.get(2)?);
        let columns: Option<String> = ctx.get(3)?;
        Ok(index_name(&table, &index, &origin, columns.as_deref()))
    })?;
    conn.create_scalar_function("pg_relation_oid", 1, pure(), |ctx| {
        Ok(relation_oid(&ctx.get::<String>(0)?))
    })?;
    conn.create_scalar_function("to_regclass", 1, pure(), |ctx| {
        let name: Option<String> = ctx.get(0)?;
        Ok(name.map(|n| relation_oid(n.trim_matches('"'))))
    })?;
    conn.create_scalar_function("format_type", 2, pure(), |ctx| {
        let oid: Option<i64> = ctx.get(0)?;
        Ok(oid.map(|oid| type_by_oid(oid).map_or("???".to_owned(), sql_type_name)))
    })?;
    conn.create_scalar_function("to_regtype", 1, pure(), |ctx| {
        let name: Option<String> = ctx.get(0)?;
        Ok(name
            .and_then(|n| type_by_name(&n))
            .map(|t| i64::from(t.oid())))
    })?;
    // The rowid of the session's last INSERT stands in for the last
    // sequence value: SQLite's rowids are what serial columns become.
    conn.create_scalar_function("lastval", 0, FunctionFlags::SQLITE_UTF8, |ctx| {
        // SAFETY: the connection is only read, on the thread running the
        // statement that called the function.
        let conn = unsafe { ctx.get_connection()? };
        match conn.last_insert_rowid() {
            0 => Err(user_error(
                "lastval is not yet defined in this session".to_owned(),
            )),
            rowid => Ok(rowid),
        }
    })?;
    conn.create_scalar_function("pg_get_userbyid", 1, pure(), |_| Ok(OWNER))?;
    // No object has privileges granted: every ACL is the default, empty.
    conn.create_scalar_function("acldefault", 2, pure(), |_| Ok("{}"))?;
    conn.create_scalar_function("pg_encoding_to_char", 1, pure(), |_| Ok("UTF8"))?;
    // The expression a catalog column holds is already SQL text.
    for args in [2, 3] {
        conn.create_scalar_function("pg_get_expr", args, pure(), |ctx| {
            ctx.get::<Option<String>>(0)
        })?;
    }
    conn.create_scalar_function("pg_array_contains", 2, pure(), |ctx| {
        let array: Option<String> = ctx.get(0)?;
        let item = match ctx.get_raw(1) {
            ValueRef::Null => return Ok(None),
            ValueRef::Integer(i) => i.to_string(),
            ValueRef::Real(r) => r.to_string(),
            ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
        };
        Ok(array.map(|a| array_items(&a).any(|i| i == item)))
    })?;
    conn.create_scalar_function("pg_array_item", 2, pure(), |ctx| {
        let (array, index): (Option<String>, i64) = (ctx.get(0)?, ctx.get(1)?);
        let first = match array.as_deref().map(str::trim).is_some_and(is_vector) {
            true => 0,
            false => 1,
        };
        let index = usize::try_from(index - first).ok();
        let item = array.and_then(|a| index.and_then(|i| array_items(&a).nth(i)));
        // The arrays the catalog holds are of numbers (key columns,
        // options) or names: a number compares as one.
        Ok(item.map(|i| match i.parse::<i64>() {
            Ok(n) => Value::Integer(n),
            Err(_) => Value::Text(i),
        }))
    })?;
    conn.create_scalar_function("array_upper", 2, pure(), |ctx| {
        let array: Option<String> = ctx.get(0)?;
        Ok(array
            .map(|a| array_items(&a).count() as i64)
            .filter(|n| *n > 0))
    })?;
    conn.create_scalar_function("pg_relation_is_publishable", 1, pure(), |_| Ok(false))?;
    // No sequences: a serial column is SQLite's rowid.
    conn.create_scalar_function("pg_get_serial_sequence", 2, pure(), |_| Ok(None::<String>))?;
    // A foreign key's ON UPDATE / ON DELETE action as pg_constraint's letter.
    conn.create_scalar_function("sqld_fk_action", 1, pure(), |ctx| {
        let action: Option<String> = ctx.get(0)?;
        Ok(
            match action.unwrap_or_default().to_ascii_uppercase().as_str() {
                "CASCADE" => "c",
                "SET NULL" => "n",
                "SET DEFAULT" => "d",
                "RESTRICT" => "r",
                _ => "a",
            },
        )
    })?;
    // No partitions: a relation is its own only ancestor (the set-returning
    // form in FROM is rewritten by the compatibility layer).
    conn.create_scalar_function("pg_partition_ancestors", 1, pure(), |ctx| {
        ctx.get::<Value>(0)
    })?;
    conn.create_scalar_function("array_to_string", 2, pure(), |ctx| {
        let (array, separator): (Option<String>, String) = (ctx.get(0)?, ctx.get(1)?);
        Ok(array.map(|a| array_items(&a).collect::<Vec<_>>().join(&separator)))
    })?;
    conn.create_scalar_function("array_remove", 2, pure(), |ctx| {
        let (array, removed): (Option<String>, Option<String>) = (ctx.get(0)?, ctx.get(1)?);
        Ok(array.map(|a| {
            let kept: Vec<String> = array_items(&a)
                .filter(|i| Some(i) != removed.as_ref())
                .collect();
            array_text(&kept)
        }))
    })?;
    // `unnest(array)` in FROM is rewritten to read this JSON array.
    conn.create_scalar_function("pg_array_json", 1, pure(), |ctx| {
        let array: Option<String> = ctx.get(0)?;
        // Numbers as numbers, as pg_array_item gives them.
        let items: Vec<serde_json::Value> = array.as_deref().map_or_else(Vec::new, |a| {
            array_items(a)
                .map(|i| match i.parse::<i64>() {
                    Ok(n) => n.into(),
                    Err(_) => i.into(),
                })
                .collect()
        });
        Ok(serde_json::Value::from(items).to_string())
    })?;
    conn.create_aggregate_function("array_agg", 1, pure(), ArrayAgg)?;
    conn.create_scalar_function("quote_ident", 1, pure(), |ctx| {
        let name: Option<String> = ctx.get(0)?;
        Ok(name.map(|n| quote_ident(&n)))
    })?;
    conn.create_scalar_function("quote_literal", 1, pure(), |ctx| {
        let text: Option<String> = ctx.get(0)?;
        Ok(text.map(|t| format!("'{}'", t.replace('\'', "''"))))
    })?;
    // Every object is visible on the search path and every privilege held.
    let always =
        |name: &str, args: i32| conn.create_scalar_function(name, args, pure(), |_| Ok(true));
    always("pg_table_is_visible", 1)?;
    always("pg_type_is_visible", 1)?;
    always("pg_function_is_visible", 1)?;
    always("pg_collation_is_visible", 1)?;
    always("pg_opclass_is_visible", 1)?;
    always("pg_operator_is_visible", 1)?;
    for args in [2, 3] {
        always("has_table_privilege", args)?;
        always("has_schema_privilege", args)?;
        always("has_database_privilege", args)?;
    }
    // Definitions of what sqld never has (statistics objects, triggers,
    // rules, partitions); index and constraint definitions are looked up
    // by the compatibility layer instead.
    for (name, args) in [
        ("pg_get_statisticsobjdef_columns", 1),
        ("pg_get_triggerdef", 1),
        ("pg_get_triggerdef", 2),
        ("pg_get_ruledef", 1),
        ("pg_get_ruledef", 2),
        ("pg_get_viewdef", 1),
        ("pg_get_viewdef", 2),
        ("pg_get_partkeydef", 1),
        ("pg_get_function_arguments", 1),
        ("pg_get_function_result", 1),
    ] {
        conn.create_scalar_function(name, args, pure(), |_| Ok(None::<String>))?;
    }
    // Comments: only the public schema's, which Postgres gives it (sqld
    // has no COMMENT ON).
    for args in [1, 2] {
        conn.create_scalar_function("obj_description", args, pure(), move |ctx| {
            let oid: Option<i64> = ctx.get(0)?;
            let catalog: Option<String> = if args == 2 { ctx.get(1)? } else { None };
            let catalog = catalog.map_or(0, |c| relation_oid(&c));
            Ok(DESCRIPTIONS
                .iter()
                .find(|(o, c, _)| Some(*o) == oid && (args == 1 || *c == catalog))
                .map(|(_, _, text)| *text))
        })?;
    }
    for (name, args) in [("col_description", 2), ("shobj_description", 2)] {
        conn.create_scalar_function(name, args, pure(), |_| Ok(None::<String>))?;
    }
    Ok(())
}

/// `text ~ pattern`, with the `regex` crate's syntax (close to Postgres'
/// for what clients send); the compiled pattern is kept for the statement.
fn regexp(ctx: &Context<'_>) -> Result<Option<bool>> {
    let pattern = ctx.get_or_create_aux(0, |pattern| -> std::result::Result<_, Error> {
        let pattern = pattern.as_str().map_err(|e| user_error(e.to_string()))?;
        regex::Regex::new(pattern)
            .map_err(|e| user_error(format!("invalid regular expression: {e}")))
    })?;
    Ok(match ctx.get_raw(1) {
        ValueRef::Null => None,
        ValueRef::Text(t) => Some(pattern.is_match(&String::from_utf8_lossy(t))),
        ValueRef::Integer(i) => Some(pattern.is_match(&i.to_string())),
        ValueRef::Real(r) => Some(pattern.is_match(&r.to_string())),
        ValueRef::Blob(b) => Some(pattern.is_match(&String::from_utf8_lossy(b))),
    })
}

/// `array_agg(x)`: Postgres' array text of the values (NULL for no rows).
struct ArrayAgg;

impl libsql_sys::rusqlite::functions::Aggregate<Vec<String>, Option<String>> for ArrayAgg {
    fn init(&self, _: &mut Context<'_>) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn step(&self, ctx: &mut Context<'_>, items: &mut Vec<String>) -> Result<()> {
        items.push(match ctx.get_raw(0) {
            ValueRef::Null => "NULL".to_owned(),
            ValueRef::Integer(i) => i.to_string(),
            ValueRef::Real(r) => r.to_string(),
            ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
        });
        Ok(())
    }

    fn finalize(&self, _: &mut Context<'_>, items: Option<Vec<String>>) -> Result<Option<String>> {
        Ok(items.map(|items| array_text(&items)))
    }
}

/// Postgres' text of a one-dimensional array: items with a separator,
/// quote or space in them quoted.
fn array_text(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|i| {
            let plain = !i.is_empty() && !i.contains([',', '"', '\\', ' ', '{', '}']);
            match plain {
                true => i.clone(),
                false => format!("\"{}\"", i.replace('\\', "\\\\").replace('"', "\\\"")),
            }
        })
        .collect();
    format!("{{{}}}", quoted.join(","))
}

/// An identifier quoted when Postgres would quote it.
fn quote_ident(name: &str) -> String {
    let plain = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    match plain {
        true => name.to_owned(),
        false => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

/// The items of a one-dimensional Postgres array text (`{a,"b c",3}`).
/// The items of an array's text: `{a,b}`, or a vector's `1 2` (how
/// Postgres prints `int2vector`, as in `pg_index.indkey`).
fn array_items(array: &str) -> impl Iterator<Item = String> + '_ {
    let trimmed = array.trim();
    let separator = match is_vector(trimmed) {
        true => ' ',
        false => ',',
    };
    let inner = trimmed.trim_start_matches('{').trim_end_matches('}');
    inner
        .split(separator)
        .filter(|i| !i.is_empty())
        .map(|i| i.trim().trim_matches('"').to_owned())
}

/// A vector's text, whose subscripts start at 0 (an array's at 1).
fn is_vector(array: &str) -> bool {
    !array.starts_with('{')
}

/// `'\x0102'::bytea`: Postgres' hex text as the bytes it spells; other
/// text as its own bytes; a blob as it is.
fn bytea(value: ValueRef<'_>) -> Result<Value> {
    Ok(match value {
        ValueRef::Text(t) => {
            match t.strip_prefix(b"\\x") {
                Some(hex) => Value::Blob(decode_hex(hex).ok_or_else(|| {
                    user_error("invalid hexadecimal data for type bytea".to_owned())
                })?),
                None => Value::Blob(t.to_vec()),
            }
        }
        other => other.into(),
    })
}

fn decode_hex(hex: &[u8]) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16);
    let digits: Vec<u8> = hex
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    digits
        .chunks(2)
        .map(|pair| match pair {
            [h, l] => Some((digit(*h)? * 16 + digit(*l)?) as u8),
            _ => None,
        })
        .collect()
}

/// Postgres' spellings of a boolean as SQLite's 1 and 0.
fn boolean(value: ValueRef<'_>) -> Result<Option<bool>> {
    Ok(match value {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i != 0),
        ValueRef::Real(r) => Some(r != 0.0),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            let text = String::from_utf8_lossy(t).trim().to_ascii_lowercase();
            match text.as_str() {
                "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
                "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
                _ => {
                    return Err(user_error(format!(
                        "invalid input syntax for type boolean: \"{text}\""
                    )))
                }
            }
        }
    })
}

/// A date or time text normalized by `normalize`; other values as they are.
fn datetime(value: ValueRef<'_>, normalize: impl Fn(&str) -> String) -> Result<Value> {
    Ok(match value {
        ValueRef::Text(t) => Value::Text(normalize(String::from_utf8_lossy(t).trim())),
        other => other.into(),
    })
}

fn type_by_oid(oid: i64) -> Option<&'static Type> {
    TYPES.iter().find(|t| i64::from(t.oid()) == oid)
}

/// A type by any of its names: Postgres' (`int4`), SQL's (`integer`).
fn type_by_name(name: &str) -> Option<&'static Type> {
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    let canonical = match name {
        "int" | "integer" => "int4",
        "bigint" => "int8",
        "smallint" => "int2",
        "boolean" => "bool",
        "real" => "float4",
        "double precision" => "float8",
        "character varying" => "varchar",
        "decimal" => "numeric",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "time without time zone" => "time",
        other => other,
    };
    TYPES.iter().find(|t| t.name() == canonical)
}

/// The name `format_type` gives: SQL's where it has one.
fn sql_type_name(ty: &Type) -> String {
    match *ty {
        Type::BOOL => "boolean",
        Type::INT2 => "smallint",
        Type::INT4 => "integer",
        Type::INT8 => "bigint",
        Type::FLOAT4 => "real",
        Type::FLOAT8 => "double precision",
        Type::VARCHAR => "character varying",
        Type::TIMESTAMP => "timestamp without time zone",
        Type::TIMESTAMPTZ => "timestamp with time zone",
        Type::TIME => "time without time zone",
        _ => ty.name(),
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relation_oids_are_stable_and_user_range() {
        assert_eq!(relation_oid("t"), relation_oid("T"));
        assert!(relation_oid("t") >= i64::from(FIRST_USER_OID));
        assert_ne!(relation_oid("t"), relation_oid("u"));
    }

    #[test]
    fn hex_bytea_decodes() {
        assert_eq!(decode_hex(b"00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex(b"0"), None);
        assert_eq!(decode_hex(b"zz"), None);
    }
}
