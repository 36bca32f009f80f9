//! The compatibility layer: Postgres syntax that drivers, pools and tools
//! send on their own (`::` casts, `E'...'` strings, `= ANY(ARRAY[...])`,
//! `~` regular expressions, `OPERATOR(pg_catalog.~)`, `pg_catalog.`
//! qualified function calls, `COLLATE pg_catalog.default`), rewritten into
//! SQLite that means the same.
//!
//! Ordinary SQLite statements never reach the parser: `may_need_rewrite`
//! is a byte scan for the few markers of that syntax, run once when a
//! statement is classified, and only a statement that has one is parsed
//! (with `sqlparser`'s PostgreSQL dialect) and printed back. A statement
//! the parser cannot read, or one it reads but finds nothing to change in,
//! runs as sent.

mod casts;
mod constraints;
mod expand_array;
mod parse;
mod rewrite;
mod tools;

pub use constraints::{altered_tables, TableSchema, SCHEMA_QUERY};
pub use rewrite::rewrite;
pub use tools::{may_translate, translate_batch};

/// Markers of Postgres-only syntax, matched case-sensitively as clients
/// write them. `~` also catches SQLite's bitwise not, which the rewrite
/// leaves as it is.
const MARKERS: &[&str] = &[
    "::",
    "pg_catalog.",
    "~",
    "current_user",
    "session_user",
    "ilike",
    "ILIKE",
];

/// Whether `sql` may hold syntax the rewrite translates: a scan of its
/// bytes, nothing allocated.
pub fn may_need_rewrite(sql: &str) -> bool {
    MARKERS.iter().any(|m| sql.contains(m))
        || contains_escape_string(sql)
        || contains_any_call(sql)
        || creates_serial_column(sql)
}

/// A `CREATE` statement that mentions `serial` (in any case), which SQLite
/// would take for a type without integer affinity.
fn creates_serial_column(sql: &str) -> bool {
    let start = sql.trim_start();
    start
        .get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case("CREATE"))
        && start
            .as_bytes()
            .windows(6)
            .any(|w| w.eq_ignore_ascii_case(b"SERIAL"))
}

/// `E'` or `e'` that starts a token (not the end of a word or a string).
fn contains_escape_string(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    bytes.windows(2).enumerate().any(|(i, w)| {
        w.eq_ignore_ascii_case(b"e'")
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || b"_'$".contains(&bytes[i - 1])))
    })
}

/// `ANY(` or `ALL(` in any case, with optional spaces before the bracket.
fn contains_any_call(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    bytes.windows(3).enumerate().any(|(i, w)| {
        (w.eq_ignore_ascii_case(b"ANY") || w.eq_ignore_ascii_case(b"ALL"))
            && bytes[i + 3..]
                .iter()
                .find(|c| !c.is_ascii_whitespace())
                .is_some_and(|&c| c == b'(')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_sqlite_is_not_scanned_further() {
        assert!(!may_need_rewrite("select * from t where id = $1"));
        assert!(!may_need_rewrite("insert into t values (1, 'a')"));
        assert!(may_need_rewrite("select $1::integer"));
        assert!(may_need_rewrite("select 1 where 2 = any (array[1,2])"));
        assert!(may_need_rewrite("select pg_catalog.version()"));
        assert!(may_need_rewrite("select E'a\\nb'"));
        assert!(!may_need_rewrite("select * from t where name = 'the'"));
        assert!(may_need_rewrite("CREATE TABLE t (id SERIAL PRIMARY KEY)"));
        assert!(!may_need_rewrite("select serial from t"));
    }
}
