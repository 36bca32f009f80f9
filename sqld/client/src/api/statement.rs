//! Prepared statements: prepare, bind, step, columns, reset, finalize,
//! and the `sqlite3_value` accessors for what `sqlite3_column_value`
//! returns.

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::ptr;
use std::sync::atomic::Ordering;

use super::connection::free_db;
use super::{guard, malloc_string};
use crate::codes::*;
use crate::db::sqlite3;
use crate::scan;
use crate::stmt::{self, sqlite3_stmt};
use crate::value::{SqliteValue, Value};

#[allow(non_camel_case_types)]
pub type sqlite3_value = SqliteValue;

type Destructor = Option<unsafe extern "C" fn(*mut c_void)>;
/// `SQLITE_TRANSIENT`: the library copies the data (it always does).
const TRANSIENT: isize = -1;

/// # Safety
/// C API contract for `sqlite3_prepare_v2`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_prepare(
    db: *mut sqlite3,
    sql: *const c_char,
    n_byte: c_int,
    pp_stmt: *mut *mut sqlite3_stmt,
    pz_tail: *mut *const c_char,
) -> c_int {
    sqlite3_prepare_v2(db, sql, n_byte, pp_stmt, pz_tail)
}

/// # Safety
/// C API contract for `sqlite3_prepare_v2`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_prepare_v3(
    db: *mut sqlite3,
    sql: *const c_char,
    n_byte: c_int,
    _flags: c_uint,
    pp_stmt: *mut *mut sqlite3_stmt,
    pz_tail: *mut *const c_char,
) -> c_int {
    sqlite3_prepare_v2(db, sql, n_byte, pp_stmt, pz_tail)
}

/// Prepares the first statement of `sql` on the server (one round trip);
/// `*pz_tail` points past it. Empty SQL gives a NULL statement.
///
/// # Safety
/// `sql` holds `n_byte` bytes, or is NUL-terminated when `n_byte` < 0.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_prepare_v2(
    db: *mut sqlite3,
    sql: *const c_char,
    n_byte: c_int,
    pp_stmt: *mut *mut sqlite3_stmt,
    pz_tail: *mut *const c_char,
) -> c_int {
    guard(SQLITE_INTERNAL, || {
        if !pp_stmt.is_null() {
            *pp_stmt = ptr::null_mut();
        }
        if db.is_null() || sql.is_null() || pp_stmt.is_null() {
            return SQLITE_MISUSE;
        }
        let bytes = sql_bytes(sql, n_byte);
        let scanned = scan::first_statement(bytes);
        if !pz_tail.is_null() {
            *pz_tail = sql.add(scanned.end);
        }
        let mut state = (*db).lock();
        if scanned.empty {
            state.clear_error();
            return SQLITE_OK;
        }
        let text = String::from_utf8_lossy(&bytes[..scanned.end]);
        match stmt::prepare(&*db, &mut state, text.trim(), &scanned) {
            Ok(stmt) => {
                *pp_stmt = Box::into_raw(stmt);
                SQLITE_OK
            }
            Err(rc) => rc,
        }
    })
}

unsafe fn sql_bytes<'a>(sql: *const c_char, n_byte: c_int) -> &'a [u8] {
    let all = if n_byte < 0 {
        std::ffi::CStr::from_ptr(sql).to_bytes()
    } else {
        std::slice::from_raw_parts(sql as *const u8, n_byte as usize)
    };
    let end = all.iter().position(|b| *b == 0).unwrap_or(all.len());
    &all[..end]
}

/// # Safety
/// `stmt` is NULL or a live statement.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_step(stmt: *mut sqlite3_stmt) -> c_int {
    guard(SQLITE_INTERNAL, || {
        let Some(stmt) = stmt.as_ref() else {
            return SQLITE_MISUSE;
        };
        let mut db = stmt.db().lock();
        let rc = stmt.lock().step(&mut db);
        rc
    })
}

/// # Safety
/// `stmt` is NULL or a live statement.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_reset(stmt: *mut sqlite3_stmt) -> c_int {
    guard(SQLITE_INTERNAL, || match stmt.as_ref() {
        Some(stmt) => stmt.lock().reset(),
        None => SQLITE_OK,
    })
}

/// # Safety
/// `stmt` is NULL or a live statement, not used again after this.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_finalize(stmt: *mut sqlite3_stmt) -> c_int {
    guard(SQLITE_INTERNAL, || {
        if stmt.is_null() {
            return SQLITE_OK;
        }
        let stmt = Box::from_raw(stmt);
        let db_ptr = stmt.db as *mut sqlite3;
        let rc = {
            let mut db = stmt.db().lock();
            let mut state = stmt.lock();
            state.release(&mut db);
            state.reset()
        };
        drop(stmt);
        let db = &*db_ptr;
        if db.live_statements.fetch_sub(1, Ordering::SeqCst) == 1
            && db.zombie.load(Ordering::SeqCst)
        {
            free_db(db_ptr);
        }
        rc
    })
}

/// # Safety
/// `stmt` is NULL or a live statement.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_clear_bindings(stmt: *mut sqlite3_stmt) -> c_int {
    guard(SQLITE_INTERNAL, || {
        if let Some(stmt) = stmt.as_ref() {
            stmt.lock().bound.iter_mut().for_each(|v| *v = Value::Null);
        }
        SQLITE_OK
    })
}

unsafe fn bind(stmt: *mut sqlite3_stmt, index: c_int, value: impl FnOnce() -> Value) -> c_int {
    guard(SQLITE_INTERNAL, || match stmt.as_ref() {
        Some(stmt) => stmt.lock().bind(index, value()),
        None => SQLITE_MISUSE,
    })
}

/// Calls a bound buffer's destructor, as SQLite does once it no longer
/// needs the data (here: at once, the data having been copied).
unsafe fn dispose(p: *const c_void, destructor: Destructor) {
    if let Some(f) = destructor {
        if f as usize as isize != TRANSIENT && !p.is_null() {
            f(p as *mut c_void);
        }
    }
}

unsafe fn copy_bytes(p: *const c_void, n: usize) -> Vec<u8> {
    if p.is_null() || n == 0 {
        Vec::new()
    } else {
        std::slice::from_raw_parts(p as *const u8, n).to_vec()
    }
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_null(stmt: *mut sqlite3_stmt, i: c_int) -> c_int {
    bind(stmt, i, || Value::Null)
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_int(stmt: *mut sqlite3_stmt, i: c_int, v: c_int) -> c_int {
    bind(stmt, i, || Value::Integer(v as i64))
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_int64(stmt: *mut sqlite3_stmt, i: c_int, v: i64) -> c_int {
    bind(stmt, i, || Value::Integer(v))
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_double(stmt: *mut sqlite3_stmt, i: c_int, v: f64) -> c_int {
    // SQLite stores NaN as NULL.
    bind(stmt, i, || {
        if v.is_nan() {
            Value::Null
        } else {
            Value::Real(v)
        }
    })
}

/// # Safety
/// C API contract: `p` holds `n` bytes, or is NUL-terminated when `n` < 0.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_text(
    stmt: *mut sqlite3_stmt,
    i: c_int,
    p: *const c_char,
    n: c_int,
    destructor: Destructor,
) -> c_int {
    let rc = bind(stmt, i, || text_value(p, n as i64));
    dispose(p as *const c_void, destructor);
    rc
}

unsafe fn text_value(p: *const c_char, n: i64) -> Value {
    if p.is_null() {
        return Value::Null;
    }
    if n < 0 {
        Value::Text(std::ffi::CStr::from_ptr(p).to_bytes().to_vec())
    } else {
        Value::Text(copy_bytes(p as *const c_void, n as usize))
    }
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_text64(
    stmt: *mut sqlite3_stmt,
    i: c_int,
    p: *const c_char,
    n: u64,
    destructor: Destructor,
    encoding: u8,
) -> c_int {
    let rc = bind(stmt, i, || {
        let value = text_value(p, n as i64);
        match (value, encoding) {
            (Value::Text(b), 2..=4) => {
                // UTF-16: 2 is little-endian, 3 big-endian, 4 native.
                let units: Vec<u16> = b
                    .chunks_exact(2)
                    .map(|c| {
                        if encoding == 3 {
                            u16::from_be_bytes([c[0], c[1]])
                        } else {
                            u16::from_le_bytes([c[0], c[1]])
                        }
                    })
                    .collect();
                Value::Text(String::from_utf16_lossy(&units).into_bytes())
            }
            (value, _) => value,
        }
    });
    dispose(p as *const c_void, destructor);
    rc
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_blob(
    stmt: *mut sqlite3_stmt,
    i: c_int,
    p: *const c_void,
    n: c_int,
    destructor: Destructor,
) -> c_int {
    sqlite3_bind_blob64(stmt, i, p, n.max(0) as u64, destructor)
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_blob64(
    stmt: *mut sqlite3_stmt,
    i: c_int,
    p: *const c_void,
    n: u64,
    destructor: Destructor,
) -> c_int {
    let rc = bind(stmt, i, || {
        if p.is_null() {
            Value::Null
        } else {
            Value::Blob(copy_bytes(p, n as usize))
        }
    });
    dispose(p, destructor);
    rc
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_zeroblob(
    stmt: *mut sqlite3_stmt,
    i: c_int,
    n: c_int,
) -> c_int {
    bind(stmt, i, || Value::Blob(vec![0; n.max(0) as usize]))
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_zeroblob64(
    stmt: *mut sqlite3_stmt,
    i: c_int,
    n: u64,
) -> c_int {
    if n > i32::MAX as u64 {
        return SQLITE_TOOBIG;
    }
    bind(stmt, i, || Value::Blob(vec![0; n as usize]))
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_value(
    stmt: *mut sqlite3_stmt,
    i: c_int,
    value: *const sqlite3_value,
) -> c_int {
    bind(stmt, i, || {
        value.as_ref().map_or(Value::Null, |v| v.value.clone())
    })
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_parameter_count(stmt: *mut sqlite3_stmt) -> c_int {
    guard(0, || {
        stmt.as_ref().map_or(0, |s| s.lock().params.len() as c_int)
    })
}

/// # Safety
/// C API contract. The name lives as long as the statement.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_parameter_name(
    stmt: *mut sqlite3_stmt,
    i: c_int,
) -> *const c_char {
    guard(ptr::null(), || {
        let Some(stmt) = stmt.as_ref() else {
            return ptr::null();
        };
        let state = stmt.lock();
        usize::try_from(i - 1)
            .ok()
            .and_then(|i| state.params.get(i))
            .and_then(|p| p.as_ref())
            .map_or(ptr::null(), |n| n.as_ptr())
    })
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_bind_parameter_index(
    stmt: *mut sqlite3_stmt,
    name: *const c_char,
) -> c_int {
    guard(0, || {
        let (Some(stmt), false) = (stmt.as_ref(), name.is_null()) else {
            return 0;
        };
        let name = std::ffi::CStr::from_ptr(name);
        stmt.lock()
            .params
            .iter()
            .position(|p| p.as_deref() == Some(name))
            .map_or(0, |i| i as c_int + 1)
    })
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_column_count(stmt: *mut sqlite3_stmt) -> c_int {
    guard(0, || {
        stmt.as_ref().map_or(0, |s| s.lock().columns.len() as c_int)
    })
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_data_count(stmt: *mut sqlite3_stmt) -> c_int {
    guard(0, || {
        stmt.as_ref().map_or(0, |s| {
            s.lock().current.as_ref().map_or(0, |r| r.len() as c_int)
        })
    })
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_column_name(stmt: *mut sqlite3_stmt, i: c_int) -> *const c_char {
    guard(ptr::null(), || {
        let Some(stmt) = stmt.as_ref() else {
            return ptr::null();
        };
        let state = stmt.lock();
        usize::try_from(i)
            .ok()
            .and_then(|i| state.columns.get(i))
            .map_or(ptr::null(), |c| c.name.as_ptr())
    })
}

/// The SQLite spelling of the column's type as sqld described it.
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_column_decltype(
    stmt: *mut sqlite3_stmt,
    i: c_int,
) -> *const c_char {
    guard(ptr::null(), || {
        let Some(stmt) = stmt.as_ref() else {
            return ptr::null();
        };
        let state = stmt.lock();
        usize::try_from(i)
            .ok()
            .and_then(|i| state.columns.get(i))
            .and_then(|c| c.decltype)
            .map_or(ptr::null(), |d| d.as_ptr())
    })
}

/// Every column comes from database "main".
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_column_database_name(
    stmt: *mut sqlite3_stmt,
    i: c_int,
) -> *const c_char {
    if sqlite3_column_count(stmt) > i && i >= 0 {
        c"main".as_ptr()
    } else {
        ptr::null()
    }
}

/// Not reported by the server: NULL, as SQLite gives for expressions.
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_column_table_name(
    _stmt: *mut sqlite3_stmt,
    _i: c_int,
) -> *const c_char {
    ptr::null()
}

/// Not reported by the server: NULL, as SQLite gives for expressions.
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_column_origin_name(
    _stmt: *mut sqlite3_stmt,
    _i: c_int,
) -> *const c_char {
    ptr::null()
}

unsafe fn with_cell<T>(
    stmt: *mut sqlite3_stmt,
    i: c_int,
    fallback: T,
    f: impl FnOnce(&mut SqliteValue) -> T,
) -> T {
    guard_cell(fallback, || {
        let stmt = stmt.as_ref()?;
        let mut state = stmt.lock();
        state.cell(i).map(f)
    })
}

fn guard_cell<T>(fallback: T, body: impl FnOnce() -> Option<T>) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(Some(v)) => v,
        _ => fallback,
    }
}

/// Each value's own storage class, as sqld tagged it.
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_column_type(stmt: *mut sqlite3_stmt, i: c_int) -> c_int {
    with_cell(stmt, i, SQLITE_NULL, |v| v.value.type_code())
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_column_int(stmt: *mut sqlite3_stmt, i: c_int) -> c_int {
    with_cell(stmt, i, 0, |v| v.value.as_i64() as c_int)
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_column_int64(stmt: *mut sqlite3_stmt, i: c_int) -> i64 {
    with_cell(stmt, i, 0, |v| v.value.as_i64())
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_column_double(stmt: *mut sqlite3_stmt, i: c_int) -> f64 {
    with_cell(stmt, i, 0.0, |v| v.value.as_f64())
}

/// Valid until the next step, reset or finalize.
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_column_text(stmt: *mut sqlite3_stmt, i: c_int) -> *const u8 {
    with_cell(stmt, i, ptr::null(), |v| v.text_ptr())
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_column_blob(stmt: *mut sqlite3_stmt, i: c_int) -> *const c_void {
    with_cell(stmt, i, ptr::null(), |v| v.blob_ptr() as *const c_void)
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_column_bytes(stmt: *mut sqlite3_stmt, i: c_int) -> c_int {
    with_cell(stmt, i, 0, |v| v.bytes())
}

/// A pointer into the current row, valid until the next step.
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_column_value(
    stmt: *mut sqlite3_stmt,
    i: c_int,
) -> *mut sqlite3_value {
    with_cell(stmt, i, ptr::null_mut(), |v| v as *mut sqlite3_value)
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_db_handle(stmt: *mut sqlite3_stmt) -> *mut sqlite3 {
    stmt.as_ref()
        .map_or(ptr::null_mut(), |s| s.db as *mut sqlite3)
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_sql(stmt: *mut sqlite3_stmt) -> *const c_char {
    guard(ptr::null(), || {
        stmt.as_ref().map_or(ptr::null(), |s| s.lock().sql.as_ptr())
    })
}

/// # Safety
/// C API contract; the result is freed with `sqlite3_free`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_expanded_sql(stmt: *mut sqlite3_stmt) -> *mut c_char {
    guard(ptr::null_mut(), || {
        stmt.as_ref()
            .map_or(ptr::null_mut(), |s| malloc_string(&s.lock().expanded_sql()))
    })
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_stmt_readonly(stmt: *mut sqlite3_stmt) -> c_int {
    guard(1, || {
        stmt.as_ref().map_or(1, |s| s.lock().readonly as c_int)
    })
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_stmt_busy(stmt: *mut sqlite3_stmt) -> c_int {
    guard(0, || stmt.as_ref().map_or(0, |s| s.lock().busy() as c_int))
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_stmt_isexplain(stmt: *mut sqlite3_stmt) -> c_int {
    guard(0, || stmt.as_ref().map_or(0, |s| s.lock().explain as c_int))
}

/// The server keeps no per-statement counters for the client: zero.
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_stmt_status(
    _stmt: *mut sqlite3_stmt,
    _op: c_int,
    _reset: c_int,
) -> c_int {
    0
}

// sqlite3_value accessors.

unsafe fn with_value<T>(
    v: *mut sqlite3_value,
    fallback: T,
    f: impl FnOnce(&mut SqliteValue) -> T,
) -> T {
    guard_cell(fallback, || v.as_mut().map(f))
}

/// # Safety
/// `v` is NULL or a value from this library.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_value_type(v: *mut sqlite3_value) -> c_int {
    with_value(v, SQLITE_NULL, |v| v.value.type_code())
}

/// # Safety
/// As `sqlite3_value_type`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_value_numeric_type(v: *mut sqlite3_value) -> c_int {
    sqlite3_value_type(v)
}

/// # Safety
/// As `sqlite3_value_type`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_value_int(v: *mut sqlite3_value) -> c_int {
    with_value(v, 0, |v| v.value.as_i64() as c_int)
}

/// # Safety
/// As `sqlite3_value_type`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_value_int64(v: *mut sqlite3_value) -> i64 {
    with_value(v, 0, |v| v.value.as_i64())
}

/// # Safety
/// As `sqlite3_value_type`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_value_double(v: *mut sqlite3_value) -> f64 {
    with_value(v, 0.0, |v| v.value.as_f64())
}

/// # Safety
/// As `sqlite3_value_type`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_value_text(v: *mut sqlite3_value) -> *const u8 {
    with_value(v, ptr::null(), |v| v.text_ptr())
}

/// # Safety
/// As `sqlite3_value_type`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_value_blob(v: *mut sqlite3_value) -> *const c_void {
    with_value(v, ptr::null(), |v| v.blob_ptr() as *const c_void)
}

/// # Safety
/// As `sqlite3_value_type`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_value_bytes(v: *mut sqlite3_value) -> c_int {
    with_value(v, 0, |v| v.bytes())
}

/// A copy that outlives the row; free it with `sqlite3_value_free`.
///
/// # Safety
/// As `sqlite3_value_type`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_value_dup(v: *const sqlite3_value) -> *mut sqlite3_value {
    guard(ptr::null_mut(), || match v.as_ref() {
        Some(v) => Box::into_raw(Box::new(SqliteValue::new(v.value.clone()))),
        None => ptr::null_mut(),
    })
}

/// # Safety
/// `v` is NULL or came from `sqlite3_value_dup`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_value_free(v: *mut sqlite3_value) {
    if !v.is_null() {
        drop(Box::from_raw(v));
    }
}
