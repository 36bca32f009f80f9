//! The exported C functions, grouped as SQLite's documentation groups
//! them. Each one catches panics so none unwinds into C, and checks its
//! pointers: a NULL handle is `SQLITE_MISUSE`, never a crash.

mod connection;
mod library;
mod statement;
mod unsupported;

use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs an API body, turning a panic into `fallback`.
pub(crate) fn guard<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// A C string argument as `&str` (invalid UTF-8 is replaced).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
pub(crate) unsafe fn c_str<'a>(p: *const c_char) -> std::borrow::Cow<'a, str> {
    if p.is_null() {
        return "".into();
    }
    CStr::from_ptr(p).to_string_lossy()
}

/// A copy of `s` in memory from `sqlite3_malloc`, for the caller to free
/// with `sqlite3_free`.
pub(crate) fn malloc_string(s: &str) -> *mut c_char {
    let bytes = s.as_bytes();
    // SAFETY: a fresh allocation of len + 1 bytes, filled completely.
    unsafe {
        let p = libc::malloc(bytes.len() + 1) as *mut u8;
        if p.is_null() {
            return std::ptr::null_mut();
        }
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        *p.add(bytes.len()) = 0;
        p as *mut c_char
    }
}
