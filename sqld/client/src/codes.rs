//! SQLite's result codes and fundamental datatypes, and the one place that
//! turns what sqld reports (a SQLSTATE and a message) into a SQLite
//! (extended) result code.

use std::ffi::CStr;

pub const SQLITE_OK: i32 = 0;
pub const SQLITE_ERROR: i32 = 1;
pub const SQLITE_INTERNAL: i32 = 2;
pub const SQLITE_PERM: i32 = 3;
pub const SQLITE_ABORT: i32 = 4;
pub const SQLITE_BUSY: i32 = 5;
pub const SQLITE_LOCKED: i32 = 6;
pub const SQLITE_NOMEM: i32 = 7;
pub const SQLITE_READONLY: i32 = 8;
pub const SQLITE_INTERRUPT: i32 = 9;
pub const SQLITE_IOERR: i32 = 10;
pub const SQLITE_CORRUPT: i32 = 11;
pub const SQLITE_FULL: i32 = 13;
pub const SQLITE_CANTOPEN: i32 = 14;
pub const SQLITE_PROTOCOL: i32 = 15;
pub const SQLITE_SCHEMA: i32 = 17;
pub const SQLITE_TOOBIG: i32 = 18;
pub const SQLITE_CONSTRAINT: i32 = 19;
pub const SQLITE_MISMATCH: i32 = 20;
pub const SQLITE_MISUSE: i32 = 21;
pub const SQLITE_AUTH: i32 = 23;
pub const SQLITE_RANGE: i32 = 25;
pub const SQLITE_ROW: i32 = 100;
pub const SQLITE_DONE: i32 = 101;

pub const SQLITE_BUSY_SNAPSHOT: i32 = SQLITE_BUSY | (2 << 8);
pub const SQLITE_CONSTRAINT_CHECK: i32 = SQLITE_CONSTRAINT | (1 << 8);
pub const SQLITE_CONSTRAINT_FOREIGNKEY: i32 = SQLITE_CONSTRAINT | (3 << 8);
pub const SQLITE_CONSTRAINT_NOTNULL: i32 = SQLITE_CONSTRAINT | (5 << 8);
pub const SQLITE_CONSTRAINT_PRIMARYKEY: i32 = SQLITE_CONSTRAINT | (6 << 8);
pub const SQLITE_CONSTRAINT_UNIQUE: i32 = SQLITE_CONSTRAINT | (8 << 8);

pub const SQLITE_INTEGER: i32 = 1;
pub const SQLITE_FLOAT: i32 = 2;
pub const SQLITE_TEXT: i32 = 3;
pub const SQLITE_BLOB: i32 = 4;
pub const SQLITE_NULL: i32 = 5;

/// SQLSTATEs sqld sends (its `error.rs`) and the SQLite code each stands
/// for. Exact codes first; classes (two characters) after.
const BY_SQLSTATE: &[(&str, i32)] = &[
    ("23505", SQLITE_CONSTRAINT_UNIQUE),
    ("23502", SQLITE_CONSTRAINT_NOTNULL),
    ("23503", SQLITE_CONSTRAINT_FOREIGNKEY),
    ("23514", SQLITE_CONSTRAINT_CHECK),
    ("23000", SQLITE_CONSTRAINT),
    ("40001", SQLITE_BUSY_SNAPSHOT),
    ("55P03", SQLITE_BUSY),
    ("25006", SQLITE_READONLY),
    ("42501", SQLITE_AUTH),
    ("57014", SQLITE_INTERRUPT),
    ("53200", SQLITE_NOMEM),
    ("53100", SQLITE_FULL),
    ("54000", SQLITE_TOOBIG),
    ("42804", SQLITE_MISMATCH),
    ("22023", SQLITE_RANGE),
    ("58030", SQLITE_IOERR),
    ("XX001", SQLITE_CORRUPT),
    ("08P01", SQLITE_PROTOCOL),
    ("57P01", SQLITE_ABORT),
    ("53300", SQLITE_BUSY),
    ("28P01", SQLITE_AUTH),
    ("28000", SQLITE_AUTH),
    ("XX", SQLITE_INTERNAL),
    ("23", SQLITE_CONSTRAINT),
    ("08", SQLITE_IOERR),
];

/// The SQLite extended result code for an error sqld reported. Everything
/// not listed (bad SQL, missing tables, ...) is plain `SQLITE_ERROR`, as
/// SQLite itself reports those.
pub fn for_sqlstate(sqlstate: &str, message: &str) -> i32 {
    if sqlstate == "23505" && message.contains("PRIMARY KEY") {
        return SQLITE_CONSTRAINT_PRIMARYKEY;
    }
    BY_SQLSTATE
        .iter()
        .find(|(code, _)| *code == sqlstate)
        .or_else(|| {
            BY_SQLSTATE
                .iter()
                .find(|(code, _)| code.len() == 2 && sqlstate.starts_with(code))
        })
        .map(|(_, rc)| *rc)
        .unwrap_or(SQLITE_ERROR)
}

/// `sqlite3_errstr`: SQLite's English text for a result code.
pub fn errstr(rc: i32) -> &'static CStr {
    match rc & 0xff {
        SQLITE_OK => c"not an error",
        SQLITE_ERROR => c"SQL logic error",
        SQLITE_INTERNAL => c"internal error",
        SQLITE_PERM => c"access permission denied",
        SQLITE_ABORT => c"query aborted",
        SQLITE_BUSY => c"database is locked",
        SQLITE_LOCKED => c"database table is locked",
        SQLITE_NOMEM => c"out of memory",
        SQLITE_READONLY => c"attempt to write a readonly database",
        SQLITE_INTERRUPT => c"interrupted",
        SQLITE_IOERR => c"disk I/O error",
        SQLITE_CORRUPT => c"database disk image is malformed",
        SQLITE_FULL => c"database or disk is full",
        SQLITE_CANTOPEN => c"unable to open database file",
        SQLITE_PROTOCOL => c"locking protocol",
        SQLITE_SCHEMA => c"database schema has changed",
        SQLITE_TOOBIG => c"string or blob too big",
        SQLITE_CONSTRAINT => c"constraint failed",
        SQLITE_MISMATCH => c"datatype mismatch",
        SQLITE_MISUSE => c"bad parameter or other API misuse",
        SQLITE_AUTH => c"authorization denied",
        SQLITE_RANGE => c"column index out of range",
        SQLITE_ROW => c"another row available",
        SQLITE_DONE => c"no more rows available",
        _ => c"unknown error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_sqlite_codes() {
        assert_eq!(
            for_sqlstate("23505", "UNIQUE constraint failed: t.a"),
            SQLITE_CONSTRAINT_UNIQUE
        );
        assert_eq!(
            for_sqlstate("23505", "PRIMARY KEY constraint failed"),
            SQLITE_CONSTRAINT_PRIMARYKEY
        );
        assert_eq!(for_sqlstate("23P99", ""), SQLITE_CONSTRAINT);
        assert_eq!(for_sqlstate("55P03", "database is locked"), SQLITE_BUSY);
        assert_eq!(for_sqlstate("42601", "syntax error"), SQLITE_ERROR);
        assert_eq!(for_sqlstate("42P01", "no such table: t"), SQLITE_ERROR);
        assert_eq!(for_sqlstate("XX000", ""), SQLITE_INTERNAL);
    }

    #[test]
    fn errstr_uses_the_primary_code() {
        assert_eq!(
            errstr(SQLITE_CONSTRAINT_UNIQUE).to_str().unwrap(),
            "constraint failed"
        );
    }
}
