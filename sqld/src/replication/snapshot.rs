//! Snapshots: a consistent copy of the database as of a known frame_no,
//! made with SQLite's online backup API from a connection whose read
//! transaction pins that state.
//!
//! The backup API sets the copy's schema cookie to one more than the
//! destination had, not to the source's: the copy is put back to the
//! source's cookie. Otherwise a replica loading it would hold a cookie one
//! ahead of the primary's history, the primary's next DDL would bring the
//! cookie to that same value, and replica sessions would keep the schema
//! they parsed before it (SQLite rereads a schema only when the cookie
//! changes).

use std::ffi::CStr;
use std::path::Path;

use libsql_sys::ffi;
use libsql_sys::rusqlite::Connection;

/// Why a snapshot could not be made (SQLite's message).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SnapshotError(pub String);

const MAIN: &CStr = c"main";
/// Where the schema cookie lives in a database file's header (page 1).
const SCHEMA_COOKIE_OFFSET: u64 = 40;

/// Writes the database `src` sees (inside its current read transaction,
/// if any) to a new file at `to`, fsynced.
pub fn backup(src: &Connection, to: &Path) -> Result<(), SnapshotError> {
    let _ = std::fs::remove_file(to);
    let dest = Connection::open(to).map_err(|e| SnapshotError(e.to_string()))?;
    // WAL mode in the copy too, so its first page says so: replicas load
    // the snapshot page by page into a WAL-mode database.
    dest.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .map_err(|e| SnapshotError(e.to_string()))?;
    unsafe {
        let handle =
            ffi::sqlite3_backup_init(dest.handle(), MAIN.as_ptr(), src.handle(), MAIN.as_ptr());
        if handle.is_null() {
            return Err(SnapshotError(format!(
                "backup could not start (code {})",
                ffi::sqlite3_errcode(dest.handle())
            )));
        }
        let step = ffi::sqlite3_backup_step(handle, -1);
        let finish = ffi::sqlite3_backup_finish(handle);
        if step != ffi::SQLITE_DONE || finish != ffi::SQLITE_OK {
            return Err(SnapshotError(format!(
                "backup failed (codes {step}, {finish})"
            )));
        }
    }
    // Closing the last connection checkpoints the copy's WAL into it.
    drop(dest);
    let cookie: u32 = src
        .query_row("PRAGMA schema_version", [], |r| r.get(0))
        .map_err(|e| SnapshotError(e.to_string()))?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(to)
        .map_err(|e| SnapshotError(e.to_string()))?;
    std::os::unix::fs::FileExt::write_all_at(&file, &cookie.to_be_bytes(), SCHEMA_COOKIE_OFFSET)
        .and_then(|_| file.sync_all())
        .map_err(|e| SnapshotError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_keeps_the_source_schema_cookie() {
        let tmp = tempfile::tempdir().unwrap();
        let src = Connection::open(tmp.path().join("src.db")).unwrap();
        src.execute_batch("PRAGMA journal_mode=WAL; create table a(x); create table b(y);")
            .unwrap();
        let cookie = |c: &Connection| -> u32 {
            c.query_row("PRAGMA schema_version", [], |r| r.get(0))
                .unwrap()
        };
        let to = tmp.path().join("snapshot.db");
        backup(&src, &to).unwrap();
        let copy = Connection::open(&to).unwrap();
        assert_eq!(cookie(&copy), cookie(&src));
        let tables: i64 = copy
            .query_row("select count(*) from sqlite_schema", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 2);
        let check: String = copy
            .query_row("pragma integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }
}
