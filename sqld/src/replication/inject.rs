//! Writing frames into a database through libsql's WAL insert API: how a
//! replica applies the primary's transactions, and how a primary that
//! crashed replays its own log.

use std::io::Read;
use std::time::{Duration, Instant};

use libsql_sys::ffi;

use super::frame::{Frame, PAGE_SIZE, WAL_FRAME_HEADER};
use libsql_sys::rusqlite::Connection;

/// Checkpoint an injecting connection's WAL once it holds this many frames.
const CHECKPOINT_FRAMES: u32 = 2000;
/// How long a transaction waits for the WAL write lock before it fails
/// with SQLITE_BUSY, and how often it tries meanwhile.
const LOCK_WAIT: Duration = Duration::from_secs(1);
const LOCK_RETRY: Duration = Duration::from_micros(200);

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

/// Injection stopped by `error` once the batch's first `applied` frames
/// (whole transactions) were committed. Those stay committed: injecting
/// them again would write their pages back over what the transactions
/// after them changed, and readers would see the database go back in time
/// (or inconsistent, a page pointing past the end: SQLITE_CORRUPT).
#[derive(Debug, thiserror::Error)]
#[error("{error} (after {applied} frames were applied)")]
pub struct Stopped {
    pub applied: usize,
    #[source]
    pub error: InjectError,
}

/// Injects whole transactions: every run of frames ending in a commit
/// frame becomes one atomic WAL transaction. Frames after the last commit
/// are ignored.
pub fn inject_transactions(conn: &Connection, frames: &[Frame]) -> Result<(), Stopped> {
    for_each_transaction(frames, |txn| {
        inject(conn, txn.iter().map(Frame::to_wal_frame))
    })
}

/// Runs `apply` on each transaction of `frames` in order, stopping at the
/// first error with the count of frames applied before it.
fn for_each_transaction(
    frames: &[Frame],
    mut apply: impl FnMut(&[Frame]) -> Result<(), InjectError>,
) -> Result<(), Stopped> {
    let mut start = 0;
    for (i, frame) in frames.iter().enumerate() {
        if frame.is_commit() {
            apply(&frames[start..=i]).map_err(|error| Stopped {
                applied: start,
                error,
            })?;
            start = i + 1;
        }
    }
    Ok(())
}

/// One transaction through libsql's WAL insert API: frames numbered after
/// the connection's own WAL, committed atomically by the last one. The
/// connection must be its database's only writer.
pub fn inject(conn: &Connection, frames: impl Iterator<Item = Vec<u8>>) -> Result<(), InjectError> {
    let own = begin(conn)?;
    let db = unsafe { conn.handle() };
    unsafe {
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
                // Ends the write transaction. The frames written stay past
                // the WAL's committed end, where no reader looks; the next
                // transaction starts from the shared WAL index header, and
                // SQLite drops such leftovers from the index when it
                // appends over them, as after any writer that stopped.
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

/// Opens the write transaction and returns the WAL's length. Neither step
/// waits for a lock (SQLite's busy handler is not in this path), and a
/// reader that finds the WAL index header mid-update (as it is at every
/// commit) takes the WAL write lock for a moment to read it again. So
/// SQLITE_BUSY here is routine; nothing is written yet, and it is retried
/// for up to `LOCK_WAIT`.
fn begin(conn: &Connection) -> Result<u32, InjectError> {
    let db = unsafe { conn.handle() };
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        let mut own = 0u32;
        let mut rc = unsafe { ffi::libsql_wal_frame_count(db, &mut own) };
        if rc == ffi::SQLITE_OK {
            rc = unsafe { ffi::libsql_wal_insert_begin(db) };
            if rc == ffi::SQLITE_OK {
                return Ok(own);
            }
            // A failed begin may leave a read transaction open; end it,
            // so the connection holds no snapshot between attempts.
            unsafe { ffi::libsql_wal_insert_end(db) };
        }
        if rc & 0xff != ffi::SQLITE_BUSY || Instant::now() >= deadline {
            return Err(InjectError(rc));
        }
        std::thread::sleep(LOCK_RETRY);
    }
}

/// Keeps an injecting connection's WAL bounded. Readers may hold it back;
/// then the next batch tries again.
pub fn checkpoint_if_large(conn: &Connection) {
    checkpoint_if_over(conn, CHECKPOINT_FRAMES)
}

/// Checkpoints once the WAL holds `limit` frames.
pub fn checkpoint_if_over(conn: &Connection, limit: u32) {
    let mut frames = 0u32;
    let rc = unsafe { ffi::libsql_wal_frame_count(conn.handle(), &mut frames) };
    if rc == ffi::SQLITE_OK && frames >= limit {
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(frame_no: u64, size_after: u32) -> Frame {
        Frame {
            frame_no,
            page_no: 1,
            size_after,
            page: bytes::Bytes::from(vec![0u8; PAGE_SIZE]),
        }
    }

    #[test]
    fn a_stopped_batch_reports_the_transactions_committed_before_the_error() {
        // Three transactions (2 frames, 1, 2) and a frame without a commit.
        let frames = [
            frame(1, 0),
            frame(2, 3),
            frame(3, 3),
            frame(4, 0),
            frame(5, 4),
            frame(6, 0),
        ];
        let mut seen = Vec::new();
        let stopped = for_each_transaction(&frames, |txn| {
            seen.push(txn.iter().map(|f| f.frame_no).collect::<Vec<_>>());
            match seen.len() {
                2 => Err(InjectError(ffi::SQLITE_BUSY)),
                _ => Ok(()),
            }
        })
        .unwrap_err();
        assert_eq!(stopped.applied, 2, "the first transaction stays applied");
        assert_eq!(stopped.error.0, ffi::SQLITE_BUSY);
        assert_eq!(seen, [vec![1, 2], vec![3]], "nothing runs after the error");

        seen.clear();
        for_each_transaction(&frames, |txn| {
            seen.push(txn.iter().map(|f| f.frame_no).collect());
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [vec![1, 2], vec![3], vec![4, 5]]);
    }
}
