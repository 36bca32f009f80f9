//! Where a committed frame is logged: a WAL wrapper on the primary's
//! connections that hands each committed transaction's pages to the
//! replication log as SQLite writes them to its WAL.
//!
//! Connections run with `cache_spill=OFF`, so SQLite writes a transaction's
//! pages in one call, at commit; pages seen before a commit are kept until
//! it (or dropped on rollback) all the same.

use std::sync::Arc;

use bytes::Bytes;
use libsql_sys::wal::wrapper::WrapWal;
use libsql_sys::wal::{PageHeaders, Result as WalResult, UndoHandler, Wal};

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
