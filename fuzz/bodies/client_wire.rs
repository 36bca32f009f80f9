//! The client library (`libsqlite3.so`) meeting a hostile server: a fake
//! server on loopback reads the library's startup packet, answers with the
//! input bytes whatever the library says next, then closes its side. The
//! library is driven through its C API as a program would: open (with a
//! password, so the SCRAM client runs if asked), prepare, bind, step
//! through every row reading every column with every accessor, finalize,
//! exec, the connection getters, close. Every call must return (an error
//! code is fine); a panic is a finding even where the library's C-API guard
//! catches it (the guard turns it into an error code, which would hide a
//! bug), so a panic hook records every panic.
//!
//! A valid seed is a real server's answers to exactly this call sequence.
//!
//! Shared by the fuzz target (`fuzz_targets/client_wire.rs`) and the corpus
//! replay test (`sqld/client/tests/fuzz_corpus.rs`).

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use std::time::Duration;

// Link the library whose C symbols are declared below.
use ::sqlite3 as _;

/// `sqlite3*` and `sqlite3_stmt*` are opaque to the caller.
type Db = c_void;
type Stmt = c_void;

extern "C" {
    fn sqlite3_open_v2(
        f: *const c_char,
        db: *mut *mut Db,
        flags: c_int,
        vfs: *const c_char,
    ) -> c_int;
    fn sqlite3_close(db: *mut Db) -> c_int;
    fn sqlite3_prepare_v2(
        db: *mut Db,
        sql: *const c_char,
        n: c_int,
        stmt: *mut *mut Stmt,
        tail: *mut *const c_char,
    ) -> c_int;
    fn sqlite3_bind_int64(stmt: *mut Stmt, i: c_int, v: i64) -> c_int;
    fn sqlite3_step(stmt: *mut Stmt) -> c_int;
    fn sqlite3_finalize(stmt: *mut Stmt) -> c_int;
    fn sqlite3_column_count(stmt: *mut Stmt) -> c_int;
    fn sqlite3_column_name(stmt: *mut Stmt, i: c_int) -> *const c_char;
    fn sqlite3_column_decltype(stmt: *mut Stmt, i: c_int) -> *const c_char;
    fn sqlite3_column_type(stmt: *mut Stmt, i: c_int) -> c_int;
    fn sqlite3_column_int64(stmt: *mut Stmt, i: c_int) -> i64;
    fn sqlite3_column_double(stmt: *mut Stmt, i: c_int) -> f64;
    fn sqlite3_column_text(stmt: *mut Stmt, i: c_int) -> *const u8;
    fn sqlite3_column_blob(stmt: *mut Stmt, i: c_int) -> *const c_void;
    fn sqlite3_column_bytes(stmt: *mut Stmt, i: c_int) -> c_int;
    fn sqlite3_exec(
        db: *mut Db,
        sql: *const c_char,
        cb: Option<
            unsafe extern "C" fn(*mut c_void, c_int, *mut *mut c_char, *mut *mut c_char) -> c_int,
        >,
        arg: *mut c_void,
        errmsg: *mut *mut c_char,
    ) -> c_int;
    fn sqlite3_changes(db: *mut Db) -> c_int;
    fn sqlite3_last_insert_rowid(db: *mut Db) -> i64;
    fn sqlite3_get_autocommit(db: *mut Db) -> c_int;
    fn sqlite3_errmsg(db: *mut Db) -> *const c_char;
}

/// The statement the call sequence prepares (a real server's answers to it
/// make the valid seeds).
pub const QUERY: &str = "SELECT ?1, 2.5, 'text', x'00ff', NULL";
/// What the sequence runs through `sqlite3_exec`.
pub const EXEC: &str = "CREATE TABLE IF NOT EXISTS fuzz(x); INSERT INTO fuzz VALUES (1)";
/// Steps taken at most, whatever the server claims.
const MAX_STEPS: usize = 1000;
/// Bound on the fake server's wait for the library.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const ROW: c_int = 100;

static PANICKED: AtomicBool = AtomicBool::new(false);

fn record_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // Broken pipes are answers here (the fake server may close first),
        // not a reason for the process to die.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// Reads the startup packet (`len:i32 body`) the library sends first.
fn read_startup(conn: &mut std::net::TcpStream) -> std::io::Result<()> {
    let mut len = [0u8; 4];
    conn.read_exact(&mut len)?;
    let len = i32::from_be_bytes(len).clamp(4, 10_000) as usize;
    let mut body = vec![0u8; len - 4];
    conn.read_exact(&mut body)
}

/// Answers the first connection on `listener` with `script`.
fn serve(listener: TcpListener, script: Vec<u8>) {
    // Polled, so a library that never connects cannot hang the run.
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    let _ = listener.set_nonblocking(true);
    let mut conn = loop {
        match listener.accept() {
            Ok((conn, _)) => break conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() > deadline {
                    return;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            Err(_) => return,
        }
    };
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
    let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
    if read_startup(&mut conn).is_err() {
        return;
    }
    let _ = conn.write_all(&script);
    let _ = conn.shutdown(Shutdown::Write);
    // Take what the library sends until it hangs up, so its writes never
    // meet a reset connection before it has read the answers.
    let mut sink = [0u8; 4096];
    while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
}

unsafe fn read_row(stmt: *mut Stmt) {
    let n = sqlite3_column_count(stmt);
    for i in -1..=n {
        let _ = sqlite3_column_type(stmt, i);
        for p in [
            sqlite3_column_name(stmt, i),
            sqlite3_column_decltype(stmt, i),
        ] {
            if !p.is_null() {
                let _ = CStr::from_ptr(p).to_bytes().len();
            }
        }
        let _ = sqlite3_column_int64(stmt, i);
        let _ = sqlite3_column_double(stmt, i);
        let text = sqlite3_column_text(stmt, i);
        let len = sqlite3_column_bytes(stmt, i);
        if !text.is_null() {
            // SQLite promises a NUL after the text's bytes.
            assert_eq!(*text.add(len as usize), 0, "column text not NUL-terminated");
        }
        let blob = sqlite3_column_blob(stmt, i);
        let len = sqlite3_column_bytes(stmt, i);
        if !blob.is_null() && len > 0 {
            let bytes = std::slice::from_raw_parts(blob.cast::<u8>(), len as usize);
            let _ = bytes.iter().fold(0u8, |a, b| a ^ b);
        }
    }
}

pub fn run(data: &[u8]) {
    record_panics();
    PANICKED.store(false, Ordering::SeqCst);
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = listener.local_addr().expect("a bound address").port();
    let script = data.to_vec();
    let server = std::thread::spawn(move || serve(listener, script));
    let url = CString::new(format!(
        "postgres://fuzz:secret@127.0.0.1:{port}/sqld?sslmode=disable"
    ))
    .expect("no NUL in the URL");
    let query = CString::new(QUERY).expect("no NUL");
    let exec = CString::new(EXEC).expect("no NUL");
    unsafe {
        let mut db = std::ptr::null_mut();
        let rc = sqlite3_open_v2(url.as_ptr(), &mut db, 0x6, std::ptr::null());
        if rc == 0 {
            let mut stmt = std::ptr::null_mut();
            let rc = sqlite3_prepare_v2(db, query.as_ptr(), -1, &mut stmt, std::ptr::null_mut());
            if rc == 0 && !stmt.is_null() {
                let _ = sqlite3_bind_int64(stmt, 1, 42);
                for _ in 0..MAX_STEPS {
                    if sqlite3_step(stmt) != ROW {
                        break;
                    }
                    read_row(stmt);
                }
                let _ = sqlite3_finalize(stmt);
            }
            let _ = sqlite3_exec(
                db,
                exec.as_ptr(),
                None,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
            let _ = sqlite3_changes(db);
            let _ = sqlite3_last_insert_rowid(db);
            let _ = sqlite3_get_autocommit(db);
        }
        if !db.is_null() {
            let msg = sqlite3_errmsg(db);
            if !msg.is_null() {
                let _ = CStr::from_ptr(msg).to_bytes().len();
            }
        }
        let _ = sqlite3_close(db);
    }
    let _ = server.join();
    assert!(
        !PANICKED.load(Ordering::SeqCst),
        "the client library panicked (its C-API guard hid it from the caller)"
    );
}
