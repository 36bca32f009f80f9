//! Where a committed frame is logged: a WAL wrapper on the primary's
//! connections that hands each committed transaction's pages to the
//! replication log as SQLite writes them to its WAL.
//!
//! Connections run with `cache_spill=OFF`, so SQLite writes a transaction's
//! pages in one call, at commit; pages seen before a commit are kept until
//! it (or dropped on rollback) all the same.
//!
//! A connection opens a WAL for every WAL-mode database attached to it, all
//! through the same manager: `CaptureWalManager` logs only the WAL of the
//! database file itself, so pages of another file never enter the log.

use std::ffi::{c_int, CStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use libsql_sys::wal::wrapper::{WalWrapper, WrapWal, WrappedWal};
use libsql_sys::wal::{
    PageHeaders, Result as WalResult, Sqlite3Db, Sqlite3File, Sqlite3Wal, Sqlite3WalManager,
    UndoHandler, Vfs, Wal, WalManager,
};

use super::log::ReplicationLog;

#[derive(Clone, Default)]
pub struct CaptureWal {
    /// `None` on connections whose writes are not replicated (a replica's).
    log: Option<Arc<ReplicationLog>>,
    /// Pages of the transaction in progress, in the order written.
    pending: Vec<(u32, Bytes)>,
}

impl CaptureWal {
    pub fn new(log: Option<Arc<ReplicationLog>>) -> Self {
        CaptureWal {
            log,
            pending: Vec::new(),
        }
    }
}

/// Opens each WAL of a connection: the database file's with `CaptureWal`
/// logging its commits, any other (an attached file's) unlogged.
#[derive(Clone)]
pub struct CaptureWalManager {
    /// The database whose commits are replicated.
    main: PathBuf,
    logged: WalWrapper<CaptureWal, Sqlite3WalManager>,
    unlogged: WalWrapper<CaptureWal, Sqlite3WalManager>,
}

impl CaptureWalManager {
    pub fn new(main: &Path, log: Option<Arc<ReplicationLog>>) -> Self {
        CaptureWalManager {
            main: main.to_owned(),
            logged: WalWrapper::new(CaptureWal::new(log), Sqlite3WalManager::new()),
            unlogged: WalWrapper::new(CaptureWal::new(None), Sqlite3WalManager::new()),
        }
    }

    /// Whether SQLite's `db_path` (a full path, perhaps through symlinks) is
    /// the main database file: compared by identity, not by spelling.
    fn is_main(&self, db_path: &CStr) -> bool {
        let path = Path::new(std::ffi::OsStr::from_bytes(db_path.to_bytes()));
        match (std::fs::metadata(path), std::fs::metadata(&self.main)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
}

impl WalManager for CaptureWalManager {
    type Wal = WrappedWal<CaptureWal, Sqlite3Wal>;

    fn use_shared_memory(&self) -> bool {
        self.logged.use_shared_memory()
    }

    fn open(
        &self,
        vfs: &mut Vfs,
        file: &mut Sqlite3File,
        no_shm_mode: c_int,
        max_log_size: i64,
        db_path: &CStr,
    ) -> WalResult<Self::Wal> {
        let manager = if self.is_main(db_path) {
            &self.logged
        } else {
            &self.unlogged
        };
        manager.open(vfs, file, no_shm_mode, max_log_size, db_path)
    }

    // Both wrappers close, destroy and probe WALs the same way (SQLite's).
    fn close(
        &self,
        wal: &mut Self::Wal,
        db: &mut Sqlite3Db,
        sync_flags: c_int,
        scratch: Option<&mut [u8]>,
    ) -> WalResult<()> {
        self.unlogged.close(wal, db, sync_flags, scratch)
    }

    fn destroy_log(&self, vfs: &mut Vfs, db_path: &CStr) -> WalResult<()> {
        self.unlogged.destroy_log(vfs, db_path)
    }

    fn log_exists(&self, vfs: &mut Vfs, db_path: &CStr) -> WalResult<bool> {
        self.unlogged.log_exists(vfs, db_path)
    }

    fn destroy(self) {
        self.logged.destroy();
        self.unlogged.destroy();
    }
}

/// The error SQLite reports when the log cannot take a commit.
fn io_error() -> libsql_sys::wal::Error {
    libsql_sys::wal::Error::new(libsql_sys::ffi::SQLITE_IOERR)
}

impl<W: Wal> WrapWal<W> for CaptureWal {
    fn insert_frames(
        &mut self,
        wrapped: &mut W,
        page_size: std::ffi::c_int,
        page_headers: &mut PageHeaders,
        size_after: u32,
        is_commit: bool,
        sync_flags: std::ffi::c_int,
    ) -> WalResult<usize> {
        let Some(log) = self.log.clone() else {
            return wrapped.insert_frames(
                page_size,
                page_headers,
                size_after,
                is_commit,
                sync_flags,
            );
        };
        self.pending.extend(
            page_headers
                .iter()
                .map(|(page_no, data)| (page_no, Bytes::copy_from_slice(data))),
        );
        if !is_commit {
            return wrapped.insert_frames(
                page_size,
                page_headers,
                size_after,
                is_commit,
                sync_flags,
            );
        }
        // The append and the WAL write happen under one lock, so the log's
        // order is the commit order and a snapshot can pin a frame_no. The
        // log is written first: after a crash it is replayed onto the last
        // snapshot, so whatever reached the WAL must be in the log.
        let mut appends = log.lock_appends();
        let pages = std::mem::take(&mut self.pending);
        if let Err(e) = appends.write_transaction(&pages, size_after) {
            tracing::error!(error = %e, "the replication log could not take a commit");
            appends.discard();
            return Err(io_error());
        }
        match wrapped.insert_frames(page_size, page_headers, size_after, is_commit, sync_flags) {
            Ok(inserted) => {
                appends.publish();
                Ok(inserted)
            }
            Err(e) => {
                appends.discard();
                Err(e)
            }
        }
    }

    fn undo<U: UndoHandler>(&mut self, wrapped: &mut W, handler: Option<&mut U>) -> WalResult<()> {
        self.pending.clear();
        wrapped.undo(handler)
    }

    fn begin_write_txn(&mut self, wrapped: &mut W) -> WalResult<()> {
        self.pending.clear();
        wrapped.begin_write_txn()
    }
}
