//! Writing frames into a database through libsql's WAL insert API: how a
//! replica applies the primary's transactions, and how a primary that
//! crashed replays its own log.

use std::io::Read;

use libsql_sys::ffi;

use super::frame::{Frame, PAGE_SIZE, WAL_FRAME_HEADER};
use libsql_sys::rusqlite::Connection;

/// Checkpoint an injecting connection's WAL once it holds this many frames.
const CHECKPOINT_FRAMES: u32 = 2000;

/// A SQLite result code from the WAL insert API (negative: the frame
/// conflicted with the receiver's own WAL).
#[derive(Debug, thiserror::Error)]
#[error("injecting frames failed with SQLite code {0}")]
pub struct InjectError(pub i32);

/// A snapshot's pages, read one at a time from `reader`, as WAL frames of
/// one transaction. A read error ends the frames before the commit frame
/// (so the transaction never commits) and is left in `error`.
pub fn snapshot_frames<'a, R: Read + 'a>(
    mut reader: R,
    pages: u32,
    error: &'a mut Option<std::io::Error>,
) -> impl Iterator<Item = Vec<u8>> + 'a {
    (1..=pages).map_while(move |page_no| {
        let mut frame = vec![0u8; WAL_FRAME_HEADER + PAGE_SIZE];
        if let Err(e) = reader.read_exact(&mut frame[WAL_FRAME_HEADER..]) {
            *error = Some(e);
            return None;
        }
        let size_after = if page_no == pages { pages } else { 0 };
        frame[0..4].copy_from_slice(&page_no.to_be_bytes());
        frame[4..8].copy_from_slice(&size_after.to_be_bytes());
        Some(frame)
    })
}

/// Injects whole transactions: every run of frames ending in a commit
/// frame becomes one atomic WAL transaction. Frames after the last commit
/// are ignored.
pub fn inject_transactions(conn: &Connection, frames: &[Frame]) -> Result<(), InjectError> {
    let mut start = 0;
    for (i, frame) in frames.iter().enumerate() {
        if frame.is_commit() {
            inject(conn, frames[start..=i].iter().map(Frame::to_wal_frame))?;
            start = i + 1;
        }
    }
    Ok(())
}

/// One transaction through libsql's WAL insert API: frames numbered after
/// the connection's own WAL, committed atomically by the last one. The
/// connection must be its database's only writer.
pub fn inject(conn: &Connection, frames: impl Iterator<Item = Vec<u8>>) -> Result<(), InjectError> {
    let db = unsafe { conn.handle() };
    unsafe {
        // The WAL's length, read before the write transaction begins.
        let mut own = 0u32;
        let rc = ffi::libsql_wal_frame_count(db, &mut own);
        if rc != ffi::SQLITE_OK {
            return Err(InjectError(rc));
        }
        let rc = ffi::libsql_wal_insert_begin(db);
        if rc != ffi::SQLITE_OK {
            return Err(InjectError(rc));
        }
        for (i, mut frame) in frames.enumerate() {
            let mut conflict = 0;
            let rc = ffi::libsql_wal_insert_frame(
                db,
                own + 1 + i as u32,
                frame.as_mut_ptr().cast(),
                frame.len() as u32,
                &mut conflict,
            );
            if rc != ffi::SQLITE_OK {
                ffi::libsql_wal_insert_end(db);
                return Err(InjectError(if conflict != 0 { -conflict } else { rc }));
            }
        }
        let rc = ffi::libsql_wal_insert_end(db);
        if rc != ffi::SQLITE_OK {
            return Err(InjectError(rc));
        }
    }
    Ok(())
}

/// Keeps an injecting connection's WAL bounded. Readers may hold it back;
/// then the next batch tries again.
pub fn checkpoint_if_large(conn: &Connection) {
    let mut frames = 0u32;
    let rc = unsafe { ffi::libsql_wal_frame_count(conn.handle(), &mut frames) };
    if rc == ffi::SQLITE_OK && frames >= CHECKPOINT_FRAMES {
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
}
