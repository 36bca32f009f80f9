//! Just enough of Postgres' system catalog and functions for the queries
//! that drivers and tools send on their own: `version()`,
//! `current_database()`, `current_schema()`, and the `pg_catalog.pg_type`
//! lookup tokio-postgres makes for type OIDs it does not know.
//!
//! The catalog is an in-memory database attached as `pg_catalog` to each
//! session's connection, so ordinary SQLite answers those queries.

use libsql_sys::rusqlite::functions::FunctionFlags;
use libsql_sys::rusqlite::{params, Connection, Result};
use pgwire::api::Type;

/// The version string `SELECT version()` and `server_version` report:
/// Postgres-compatible first (drivers parse it), then what it really is.
pub fn server_version() -> String {
    format!("16.0 (sqld {})", env!("CARGO_PKG_VERSION"))
}

pub fn version_banner() -> String {
    format!(
        "PostgreSQL 16.0 compatible; sqld {} on libsql {}",
        env!("CARGO_PKG_VERSION"),
        libsql_sys::rusqlite::version()
    )
}

/// Types sqld sends, listed in `pg_catalog.pg_type`.
const TYPES: &[Type] = &[
    Type::BOOL,
    Type::BYTEA,
    Type::INT8,
    Type::INT2,
    Type::INT4,
    Type::TEXT,
    Type::OID,
    Type::JSON,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::UNKNOWN,
    Type::VARCHAR,
    Type::DATE,
    Type::TIME,
    Type::TIMESTAMP,
    Type::TIMESTAMPTZ,
    Type::NUMERIC,
    Type::JSONB,
];

const PG_CATALOG_NAMESPACE_OID: i64 = 11;
const PUBLIC_NAMESPACE_OID: i64 = 2200;

pub fn install(conn: &Connection, database_name: &str) -> Result<()> {
    let deterministic = || FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    let banner = version_banner();
    conn.create_scalar_function("version", 0, deterministic(), move |_| Ok(banner.clone()))?;
    let name = database_name.to_owned();
    conn.create_scalar_function("current_database", 0, deterministic(), move |_| {
        Ok(name.clone())
    })?;
    conn.create_scalar_function("current_schema", 0, deterministic(), |_| Ok("public"))?;
    conn.create_scalar_function("pg_backend_pid", 0, deterministic(), |_| {
        Ok(std::process::id() as i64)
    })?;

    conn.execute_batch(
        "ATTACH DATABASE ':memory:' AS pg_catalog;
         CREATE TABLE pg_catalog.pg_namespace (oid OID PRIMARY KEY, nspname TEXT);
         CREATE TABLE pg_catalog.pg_type (
             oid OID PRIMARY KEY, typname TEXT, typnamespace OID, typlen INTEGER,
             typtype TEXT, typelem OID, typbasetype OID, typrelid OID);
         CREATE TABLE pg_catalog.pg_range (rngtypid OID PRIMARY KEY, rngsubtype OID);
         CREATE TABLE pg_catalog.pg_enum (oid OID PRIMARY KEY, enumtypid OID,
             enumsortorder REAL, enumlabel TEXT);
         CREATE TABLE pg_catalog.pg_attribute (attrelid OID, attname TEXT, atttypid OID,
             attnum INTEGER, attisdropped INTEGER);",
    )?;
    conn.execute(
        "INSERT INTO pg_catalog.pg_namespace VALUES (?1, 'pg_catalog'), (?2, 'public')",
        params![PG_CATALOG_NAMESPACE_OID, PUBLIC_NAMESPACE_OID],
    )?;
    let mut insert =
        conn.prepare("INSERT INTO pg_catalog.pg_type VALUES (?1, ?2, ?3, ?4, 'b', 0, 0, 0)")?;
    for ty in TYPES {
        let len: i64 = match *ty {
            Type::BOOL => 1,
            Type::INT2 => 2,
            Type::INT4 | Type::OID | Type::FLOAT4 | Type::DATE => 4,
            Type::INT8 | Type::FLOAT8 | Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ => 8,
            _ => -1,
        };
        insert.execute(params![
            ty.oid() as i64,
            ty.name(),
            PG_CATALOG_NAMESPACE_OID,
            len
        ])?;
    }
    // Creates the catalog's sqlite_stat1 now: a client's ANALYZE (or
    // `PRAGMA optimize`, which covers every attached database) may then
    // refresh the statistics, while the sandbox keeps it from adding
    // tables to the catalog.
    conn.execute_batch("ANALYZE pg_catalog")
}
