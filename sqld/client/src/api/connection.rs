//! Opening and closing connections, running SQL with `sqlite3_exec`, and
//! the connection's reports: errors, changes, rowid, autocommit.

use std::ffi::{c_char, c_int, c_void};
use std::ptr;
use std::sync::atomic::Ordering;

use super::{c_str, guard, malloc_string};
use crate::codes::*;
use crate::db::sqlite3;
use crate::stmt::sqlite3_stmt;

/// # Safety
/// C API contract: `filename` is NULL or a string, `pp_db` a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_open(filename: *const c_char, pp_db: *mut *mut sqlite3) -> c_int {
    sqlite3_open_v2(filename, pp_db, 0x06, ptr::null())
}

/// Opens a connection to the server `filename` names, or to `SQLD_URL`.
/// As in SQLite, a handle is returned even on failure, for errmsg.
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_open_v2(
    filename: *const c_char,
    pp_db: *mut *mut sqlite3,
    _flags: c_int,
    _vfs: *const c_char,
) -> c_int {
    guard(SQLITE_NOMEM, || {
        if pp_db.is_null() {
            return SQLITE_MISUSE;
        }
        let db = Box::new(sqlite3::open(&c_str(filename)));
        let rc = db.lock().errcode;
        *pp_db = Box::into_raw(db);
        rc
    })
}

/// # Safety
/// `db` is NULL or a handle from `sqlite3_open*` not yet closed.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_close(db: *mut sqlite3) -> c_int {
    guard(SQLITE_MISUSE, || {
        if db.is_null() {
            return SQLITE_OK;
        }
        if (*db).live_statements.load(Ordering::SeqCst) > 0 {
            (*db).lock().set_error(
                SQLITE_BUSY,
                "unable to close due to unfinalized statements or unfinished backups",
            );
            return SQLITE_BUSY;
        }
        free_db(db);
        SQLITE_OK
    })
}

/// Closes now, or when the last statement is finalized.
///
/// # Safety
/// As `sqlite3_close`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_close_v2(db: *mut sqlite3) -> c_int {
    guard(SQLITE_MISUSE, || {
        if db.is_null() {
            return SQLITE_OK;
        }
        if (*db).live_statements.load(Ordering::SeqCst) > 0 {
            (*db).zombie.store(true, Ordering::SeqCst);
            (*db).lock().terminate();
            return SQLITE_OK;
        }
        free_db(db);
        SQLITE_OK
    })
}

/// # Safety
/// `db` came from `Box::into_raw` and nothing references it any more.
pub(crate) unsafe fn free_db(db: *mut sqlite3) {
    let db = Box::from_raw(db);
    db.lock().terminate();
}

/// Runs every statement of `sql`, calling `callback` for each row.
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_exec(
    db: *mut sqlite3,
    sql: *const c_char,
    callback: Option<
        unsafe extern "C" fn(*mut c_void, c_int, *mut *mut c_char, *mut *mut c_char) -> c_int,
    >,
    arg: *mut c_void,
    errmsg: *mut *mut c_char,
) -> c_int {
    guard(SQLITE_INTERNAL, || {
        if !errmsg.is_null() {
            *errmsg = ptr::null_mut();
        }
        if db.is_null() {
            return SQLITE_MISUSE;
        }
        let mut rest = sql;
        let mut rc = SQLITE_OK;
        while !rest.is_null() && *rest != 0 {
            let mut stmt: *mut sqlite3_stmt = ptr::null_mut();
            let mut tail: *const c_char = ptr::null();
            rc = super::statement::sqlite3_prepare_v2(db, rest, -1, &mut stmt, &mut tail);
            if rc != SQLITE_OK {
                break;
            }
            rest = tail;
            if stmt.is_null() {
                continue;
            }
            let columns = super::statement::sqlite3_column_count(stmt);
            loop {
                rc = super::statement::sqlite3_step(stmt);
                if rc != SQLITE_ROW {
                    break;
                }
                let Some(cb) = callback else { continue };
                let mut values: Vec<*mut c_char> = (0..columns)
                    .map(|i| super::statement::sqlite3_column_text(stmt, i) as *mut c_char)
                    .collect();
                let mut names: Vec<*mut c_char> = (0..columns)
                    .map(|i| super::statement::sqlite3_column_name(stmt, i) as *mut c_char)
                    .collect();
                if cb(arg, columns, values.as_mut_ptr(), names.as_mut_ptr()) != 0 {
                    super::statement::sqlite3_finalize(stmt);
                    (*db).lock().set_error(SQLITE_ABORT, "query aborted");
                    rc = SQLITE_ABORT;
                    break;
                }
            }
            if rc == SQLITE_ABORT {
                break;
            }
            super::statement::sqlite3_finalize(stmt);
            if rc != SQLITE_DONE {
                // finalize cleared nothing: the step's error is still set.
                break;
            }
            rc = SQLITE_OK;
        }
        if rc != SQLITE_OK && !errmsg.is_null() {
            let state = (*db).lock();
            *errmsg = malloc_string(&c_str(state.errmsg_ptr()));
        }
        rc
    })
}

macro_rules! db_getter {
    ($(#[$doc:meta])* $name:ident -> $ty:ty, $fallback:expr, |$state:ident| $body:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// `db` is NULL or an open handle.
        #[no_mangle]
        pub unsafe extern "C" fn $name(db: *mut sqlite3) -> $ty {
            guard($fallback, || {
                if db.is_null() {
                    return $fallback;
                }
                let $state = (*db).lock();
                $body
            })
        }
    };
}

db_getter!(sqlite3_errcode -> c_int, SQLITE_MISUSE, |s| s.errcode & 0xff);
db_getter!(sqlite3_extended_errcode -> c_int, SQLITE_MISUSE, |s| s.errcode);
db_getter!(
    /// The pointer stays valid until the next call on the connection.
    sqlite3_errmsg -> *const c_char, c"out of memory".as_ptr(), |s| s.errmsg_ptr()
);
db_getter!(sqlite3_changes -> c_int, 0, |s| s.changes as c_int);
db_getter!(sqlite3_changes64 -> i64, 0, |s| s.changes);
db_getter!(sqlite3_total_changes -> c_int, 0, |s| s.total_changes as c_int);
db_getter!(sqlite3_total_changes64 -> i64, 0, |s| s.total_changes);
db_getter!(
    /// From the oid slot of the last INSERT's command tag (sqld's SQLite
    /// API dialect), so it costs no round trip.
    sqlite3_last_insert_rowid -> i64, 0, |s| s.last_rowid
);
db_getter!(
    /// From the transaction status of the last ReadyForQuery.
    sqlite3_get_autocommit -> c_int, 1, |s| s.autocommit() as c_int
);

/// `SQLITE_TXN_WRITE` inside a transaction (the server does not say
/// whether it has written yet), `SQLITE_TXN_NONE` outside.
///
/// # Safety
/// `db` is NULL or an open handle.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_txn_state(db: *mut sqlite3, _schema: *const c_char) -> c_int {
    guard(-1, || {
        if db.is_null() {
            return -1;
        }
        if (*db).lock().autocommit() {
            0
        } else {
            2
        }
    })
}

/// Accepted without a round trip: how long a statement waits for a lock
/// is the server's policy (its sandbox refuses `PRAGMA busy_timeout`), and
/// a lock that cannot be had still comes back as `SQLITE_BUSY`.
///
/// # Safety
/// `db` is NULL or an open handle.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_busy_timeout(db: *mut sqlite3, _ms: c_int) -> c_int {
    if db.is_null() {
        SQLITE_MISUSE
    } else {
        SQLITE_OK
    }
}

/// Sends a CancelRequest on a separate socket: the statement running on
/// this connection, if any, fails with `SQLITE_INTERRUPT`.
///
/// # Safety
/// `db` is NULL or an open handle.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_interrupt(db: *mut sqlite3) {
    guard((), || {
        if let Some(key) = db.as_ref().and_then(|d| d.cancel.as_ref()) {
            let _ = key.cancel();
        }
    })
}

/// Always on: errors carry extended codes.
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_extended_result_codes(_db: *mut sqlite3, _on: c_int) -> c_int {
    SQLITE_OK
}

/// The server does not report where in the SQL an error is.
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_error_offset(_db: *mut sqlite3) -> c_int {
    -1
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_db_readonly(db: *mut sqlite3, name: *const c_char) -> c_int {
    guard(-1, || {
        let name = c_str(name);
        if db.is_null() || !(name.is_empty() || name == "main") {
            -1
        } else {
            0
        }
    })
}

/// The name the program opened (there is no local file).
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_db_filename(
    db: *mut sqlite3,
    _name: *const c_char,
) -> *const c_char {
    guard(ptr::null(), || match db.as_ref() {
        Some(db) => db.lock().filename.as_ptr(),
        None => ptr::null(),
    })
}

/// Statements are not enumerable here: always NULL.
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_next_stmt(
    _db: *mut sqlite3,
    _stmt: *mut sqlite3_stmt,
) -> *mut sqlite3_stmt {
    ptr::null_mut()
}

/// Limits are the server's; this reports SQLite's defaults and changes
/// nothing (a negative `new_value` only queries, as documented).
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_limit(_db: *mut sqlite3, id: c_int, _new_value: c_int) -> c_int {
    match id {
        0 => 1_000_000_000, // SQLITE_LIMIT_LENGTH
        1 => 1_000_000_000, // SQLITE_LIMIT_SQL_LENGTH
        2 => 2000,          // SQLITE_LIMIT_COLUMN
        3 => 1000,          // SQLITE_LIMIT_EXPR_DEPTH
        4 => 500,           // SQLITE_LIMIT_COMPOUND_SELECT
        5 => 250_000_000,   // SQLITE_LIMIT_VDBE_OP
        6 => 127,           // SQLITE_LIMIT_FUNCTION_ARG
        7 => 10,            // SQLITE_LIMIT_ATTACHED
        8 => 50_000,        // SQLITE_LIMIT_LIKE_PATTERN_LENGTH
        9 => 32_766,        // SQLITE_LIMIT_VARIABLE_NUMBER
        10 => 1000,         // SQLITE_LIMIT_TRIGGER_DEPTH
        11 => 0,            // SQLITE_LIMIT_WORKER_THREADS
        _ => -1,
    }
}
