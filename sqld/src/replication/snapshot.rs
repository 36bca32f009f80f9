//! Snapshots: a consistent copy of the database as of a known frame_no,
//! made with SQLite's online backup API from a connection whose read
//! transaction pins that state.

use std::ffi::CStr;
use std::path::Path;

use libsql_sys::ffi;
use libsql_sys::rusqlite::Connection;

use super::log::LogError;

const MAIN: &CStr = c"main";

/// Writes the database `src` sees (inside its current read transaction,
/// if any) to a new file at `to`, fsynced.
pub fn backup(src: &Connection, to: &Path) -> Result<(), LogError> {
    let _ = std::fs::remove_file(to);
    let dest = Connection::open(to).map_err(|e| LogError::Snapshot(e.to_string()))?;
    // WAL mode in the copy too, so its first page says so: replicas load
    // the snapshot page by page into a WAL-mode database.
    dest.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .map_err(|e| LogError::Snapshot(e.to_string()))?;
    unsafe {
        let handle =
            ffi::sqlite3_backup_init(dest.handle(), MAIN.as_ptr(), src.handle(), MAIN.as_ptr());
        if handle.is_null() {
            return Err(LogError::Snapshot(format!(
                "backup could not start (code {})",
                ffi::sqlite3_errcode(dest.handle())
            )));
        }
        let step = ffi::sqlite3_backup_step(handle, -1);
        let finish = ffi::sqlite3_backup_finish(handle);
        if step != ffi::SQLITE_DONE || finish != ffi::SQLITE_OK {
            return Err(LogError::Snapshot(format!(
                "backup failed (codes {step}, {finish})"
            )));
        }
    }
    // Closing the last connection checkpoints the copy's WAL into it.
    drop(dest);
    std::fs::File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(|e| LogError::Snapshot(e.to_string()))
}
