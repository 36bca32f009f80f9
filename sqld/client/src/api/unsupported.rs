//! What needs SQLite's engine in this process and so cannot work over the
//! network: application-defined functions and collations, virtual tables,
//! extensions, backups, incremental blob I/O, sessions, serialization,
//! hooks that observe the engine. Each such call fails with `SQLITE_ERROR`
//! (or returns NULL) and, where it has a connection, an error message
//! saying it is not supported by the remote client. None crashes and none
//! pretends to have done the work.
//!
//! The few that ask for nothing (clearing a hook that was never set,
//! a trace mask of zero) succeed, since they change nothing.

use std::ffi::{c_char, c_int, c_void};
use std::ptr;

use super::guard;
use crate::codes::*;
use crate::db::sqlite3;

type Context = c_void;
type Destructor = Option<unsafe extern "C" fn(*mut c_void)>;

/// Records the refusal on `db` (if any) and returns `SQLITE_ERROR`.
unsafe fn refuse(db: *mut sqlite3, what: &str) -> c_int {
    guard(SQLITE_ERROR, || {
        if let Some(db) = db.as_ref() {
            db.lock().set_error(
                SQLITE_ERROR,
                &format!("{what} is not supported by the sqld remote client (the SQL runs on the server)"),
            );
        }
        SQLITE_ERROR
    })
}

unsafe fn destroy(arg: *mut c_void, destructor: Destructor) {
    if let Some(f) = destructor {
        f(arg);
    }
}

macro_rules! refused {
    ($name:ident($($arg:ident: $ty:ty),*) $what:expr) => {
        /// Not supported by the remote client: `SQLITE_ERROR`.
        ///
        /// # Safety
        /// C API contract.
        #[no_mangle]
        pub unsafe extern "C" fn $name(db: *mut sqlite3, $($arg: $ty),*) -> c_int {
            $(let _ = $arg;)*
            refuse(db, $what)
        }
    };
}

refused!(sqlite3_create_function(name: *const c_char, n: c_int, enc: c_int, app: *mut c_void, f: *mut c_void, step: *mut c_void, fin: *mut c_void) "sqlite3_create_function (application-defined SQL functions)");
refused!(sqlite3_create_collation(name: *const c_char, enc: c_int, arg: *mut c_void, cmp: *mut c_void) "sqlite3_create_collation");
refused!(sqlite3_create_module(name: *const c_char, module: *const c_void, aux: *mut c_void) "sqlite3_create_module (virtual tables)");
refused!(sqlite3_overload_function(name: *const c_char, n: c_int) "sqlite3_overload_function");
refused!(sqlite3_declare_vtab(sql: *const c_char) "sqlite3_declare_vtab");
refused!(sqlite3_load_extension(file: *const c_char, entry: *const c_char, errmsg: *mut *mut c_char) "sqlite3_load_extension");
refused!(sqlite3_table_column_metadata(dbname: *const c_char, table: *const c_char, column: *const c_char, decl: *mut *const c_char, coll: *mut *const c_char, notnull: *mut c_int, pk: *mut c_int, autoinc: *mut c_int) "sqlite3_table_column_metadata");
refused!(sqlite3_file_control(dbname: *const c_char, op: c_int, arg: *mut c_void) "sqlite3_file_control (there is no local database file)");
refused!(sqlite3_deserialize(schema: *const c_char, data: *mut u8, size: i64, buf: i64, flags: u32) "sqlite3_deserialize");
refused!(sqlite3_db_status(op: c_int, cur: *mut c_int, hi: *mut c_int, reset: c_int) "sqlite3_db_status");

/// Refused; the destructor runs, as SQLite runs it when registration fails.
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_create_function_v2(
    db: *mut sqlite3,
    _name: *const c_char,
    _n: c_int,
    _enc: c_int,
    app: *mut c_void,
    _f: *mut c_void,
    _step: *mut c_void,
    _fin: *mut c_void,
    destructor: Destructor,
) -> c_int {
    destroy(app, destructor);
    refuse(
        db,
        "sqlite3_create_function_v2 (application-defined SQL functions)",
    )
}

/// Refused; the destructor runs.
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_create_window_function(
    db: *mut sqlite3,
    _name: *const c_char,
    _n: c_int,
    _enc: c_int,
    app: *mut c_void,
    _step: *mut c_void,
    _fin: *mut c_void,
    _value: *mut c_void,
    _inverse: *mut c_void,
    destructor: Destructor,
) -> c_int {
    destroy(app, destructor);
    refuse(
        db,
        "sqlite3_create_window_function (application-defined SQL functions)",
    )
}

/// Refused; the destructor runs.
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_create_collation_v2(
    db: *mut sqlite3,
    _name: *const c_char,
    _enc: c_int,
    arg: *mut c_void,
    _cmp: *mut c_void,
    destructor: Destructor,
) -> c_int {
    destroy(arg, destructor);
    refuse(db, "sqlite3_create_collation_v2")
}

/// Turning extension loading off is honoured (it is always off); turning
/// it on is refused: extensions would load into this process, not into
/// the server that runs the SQL.
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_enable_load_extension(db: *mut sqlite3, on: c_int) -> c_int {
    if on == 0 {
        SQLITE_OK
    } else {
        refuse(db, "loading extensions")
    }
}

/// Clearing the authorizer is a no-op (there is none); installing one is
/// refused (the server's own authorizer decides what SQL may do).
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_set_authorizer(
    db: *mut sqlite3,
    auth: *mut c_void,
    _arg: *mut c_void,
) -> c_int {
    if auth.is_null() {
        SQLITE_OK
    } else {
        refuse(db, "sqlite3_set_authorizer")
    }
}

/// Clearing tracing is a no-op; a trace callback is refused.
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_trace_v2(
    db: *mut sqlite3,
    mask: u32,
    cb: *mut c_void,
    _ctx: *mut c_void,
) -> c_int {
    if mask == 0 || cb.is_null() {
        SQLITE_OK
    } else {
        refuse(db, "sqlite3_trace_v2")
    }
}

/// Has no return code: clearing it is a no-op; a handler is never called
/// (use `sqlite3_interrupt` to stop a statement), which the connection's
/// error message records.
///
/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_progress_handler(
    db: *mut sqlite3,
    _n: c_int,
    cb: *mut c_void,
    _arg: *mut c_void,
) {
    if !cb.is_null() {
        refuse(db, "sqlite3_progress_handler");
    }
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_serialize(
    db: *mut sqlite3,
    _schema: *const c_char,
    size: *mut i64,
    _flags: u32,
) -> *mut u8 {
    if !size.is_null() {
        *size = -1;
    }
    refuse(db, "sqlite3_serialize");
    ptr::null_mut()
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_status64(
    _op: c_int,
    cur: *mut i64,
    hi: *mut i64,
    _reset: c_int,
) -> c_int {
    for p in [cur, hi] {
        if !p.is_null() {
            *p = 0;
        }
    }
    SQLITE_ERROR
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_status(
    _op: c_int,
    cur: *mut c_int,
    hi: *mut c_int,
    _reset: c_int,
) -> c_int {
    for p in [cur, hi] {
        if !p.is_null() {
            *p = 0;
        }
    }
    SQLITE_ERROR
}

// Backups: there is no local database to copy to or from.

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_backup_init(
    dest: *mut sqlite3,
    _dest_name: *const c_char,
    _src: *mut sqlite3,
    _src_name: *const c_char,
) -> *mut c_void {
    refuse(dest, "sqlite3_backup_init (online backup)");
    ptr::null_mut()
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_backup_step(_b: *mut c_void, _n: c_int) -> c_int {
    SQLITE_MISUSE
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_backup_finish(b: *mut c_void) -> c_int {
    if b.is_null() {
        SQLITE_OK
    } else {
        SQLITE_MISUSE
    }
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_backup_remaining(_b: *mut c_void) -> c_int {
    0
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_backup_pagecount(_b: *mut c_void) -> c_int {
    0
}

// Incremental blob I/O.

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_blob_open(
    db: *mut sqlite3,
    _db_name: *const c_char,
    _table: *const c_char,
    _column: *const c_char,
    _row: i64,
    _flags: c_int,
    out: *mut *mut c_void,
) -> c_int {
    if !out.is_null() {
        *out = ptr::null_mut();
    }
    refuse(
        db,
        "sqlite3_blob_open (incremental blob I/O; select the blob instead)",
    )
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_blob_close(_b: *mut c_void) -> c_int {
    SQLITE_OK
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_blob_bytes(_b: *mut c_void) -> c_int {
    0
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_blob_read(
    _b: *mut c_void,
    _z: *mut c_void,
    _n: c_int,
    _off: c_int,
) -> c_int {
    SQLITE_MISUSE
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_blob_write(
    _b: *mut c_void,
    _z: *const c_void,
    _n: c_int,
    _off: c_int,
) -> c_int {
    SQLITE_MISUSE
}

// VFS: there is no file system layer here.

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_vfs_find(_name: *const c_char) -> *mut c_void {
    ptr::null_mut()
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_vfs_register(_vfs: *mut c_void, _default: c_int) -> c_int {
    SQLITE_ERROR
}

// Functions only callable from inside application-defined functions or
// virtual tables, which cannot be registered here: inert.

/// # Safety
/// Never legitimately called (no function can be registered).
#[no_mangle]
pub unsafe extern "C" fn sqlite3_aggregate_context(_ctx: *mut Context, _n: c_int) -> *mut c_void {
    ptr::null_mut()
}

/// # Safety
/// As above.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_user_data(_ctx: *mut Context) -> *mut c_void {
    ptr::null_mut()
}

/// # Safety
/// As above.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_context_db_handle(_ctx: *mut Context) -> *mut sqlite3 {
    ptr::null_mut()
}

/// # Safety
/// As above.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_get_auxdata(_ctx: *mut Context, _n: c_int) -> *mut c_void {
    ptr::null_mut()
}

/// # Safety
/// As above; the destructor runs so nothing leaks.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_set_auxdata(
    _ctx: *mut Context,
    _n: c_int,
    p: *mut c_void,
    d: Destructor,
) {
    destroy(p, d);
}

macro_rules! inert_result {
    ($name:ident($($arg:ident: $ty:ty),*)) => {
        /// Only meaningful inside an application-defined function, which
        /// cannot exist here: does nothing.
        ///
        /// # Safety
        /// Never legitimately called.
        #[no_mangle]
        pub unsafe extern "C" fn $name(_ctx: *mut Context, $($arg: $ty),*) {
            $(let _ = $arg;)*
        }
    };
}

inert_result!(sqlite3_result_double(v: f64));
inert_result!(sqlite3_result_error(msg: *const c_char, n: c_int));
inert_result!(sqlite3_result_error_code(code: c_int));
inert_result!(sqlite3_result_error_nomem());
inert_result!(sqlite3_result_error_toobig());
inert_result!(sqlite3_result_int(v: c_int));
inert_result!(sqlite3_result_int64(v: i64));
inert_result!(sqlite3_result_null());
inert_result!(sqlite3_result_value(v: *mut c_void));
inert_result!(sqlite3_result_zeroblob(n: c_int));

macro_rules! inert_result_buffer {
    ($name:ident($len:ty $(, $extra:ident: $ety:ty)?)) => {
        /// Only meaningful inside an application-defined function: the
        /// buffer's destructor runs, nothing else happens.
        ///
        /// # Safety
        /// Never legitimately called.
        #[no_mangle]
        pub unsafe extern "C" fn $name(_ctx: *mut Context, p: *const c_void, _n: $len, d: Destructor $(, $extra: $ety)?) {
            $(let _ = $extra;)?
            if let Some(f) = d {
                if f as usize as isize != -1 && !p.is_null() {
                    f(p as *mut c_void);
                }
            }
        }
    };
}

inert_result_buffer!(sqlite3_result_blob(c_int));
inert_result_buffer!(sqlite3_result_blob64(u64));
inert_result_buffer!(sqlite3_result_text(c_int));
inert_result_buffer!(sqlite3_result_text16le(c_int));
inert_result_buffer!(sqlite3_result_text16be(c_int));
inert_result_buffer!(sqlite3_result_text64(u64, _enc: u8));

/// # Safety
/// Only valid inside xBestIndex, which cannot run here.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_vtab_collation(_info: *mut c_void, _i: c_int) -> *const c_char {
    c"BINARY".as_ptr()
}

/// # Safety
/// Only valid inside a virtual table method.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_vtab_nochange(_ctx: *mut Context) -> c_int {
    0
}

/// # Safety
/// Only valid inside a virtual table method.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_vtab_on_conflict(_db: *mut sqlite3) -> c_int {
    1 // SQLITE_ROLLBACK
}

// The session extension.

macro_rules! session_refused {
    ($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $val:expr) => {
        /// The session extension is not supported by the remote client.
        ///
        /// # Safety
        /// C API contract.
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            $(let _ = $arg;)*
            $val
        }
    };
}

/// # Safety
/// C API contract.
#[no_mangle]
pub unsafe extern "C" fn sqlite3session_create(
    db: *mut sqlite3,
    _name: *const c_char,
    out: *mut *mut c_void,
) -> c_int {
    if !out.is_null() {
        *out = ptr::null_mut();
    }
    refuse(db, "the session extension (sqlite3session_create)")
}

session_refused!(sqlite3session_delete(s: *mut c_void) -> () = ());
session_refused!(sqlite3session_attach(s: *mut c_void, t: *const c_char) -> c_int = SQLITE_MISUSE);
session_refused!(sqlite3session_enable(s: *mut c_void, on: c_int) -> c_int = 0);
session_refused!(sqlite3session_indirect(s: *mut c_void, on: c_int) -> c_int = 0);
session_refused!(sqlite3session_isempty(s: *mut c_void) -> c_int = 1);
session_refused!(sqlite3session_changeset(s: *mut c_void, n: *mut c_int, p: *mut *mut c_void) -> c_int = SQLITE_MISUSE);
session_refused!(sqlite3session_patchset(s: *mut c_void, n: *mut c_int, p: *mut *mut c_void) -> c_int = SQLITE_MISUSE);
session_refused!(sqlite3session_table_filter(s: *mut c_void, f: *mut c_void, ctx: *mut c_void) -> () = ());
