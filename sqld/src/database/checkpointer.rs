//! Checkpoints on the primary, off the commit path. With SQLite's own
//! auto-checkpoint, the commit that crosses the threshold copies the WAL
//! into the database file and fsyncs it while it still holds the write
//! lock: every writer queued behind it stalls for milliseconds. Instead a
//! background task checkpoints PASSIVE (beside readers and the writer)
//! once enough frames have been logged; sessions still checkpoint
//! themselves, as back-pressure, only if the WAL grows far past that.
//!
//! The WAL starts over from its beginning only when a writer finds it
//! wholly copied, which never happens while commits keep coming. So after
//! the bulk copy the checkpointer takes the write gate for a moment and
//! copies the few frames committed meanwhile.

use std::sync::Arc;
use std::time::Duration;

use super::{Database, DatabaseError, DbConnection, AUTO_CHECKPOINT_PAGES};
use crate::replication::log::ReplicationLog;

/// How long the checkpointer queues for the write gate to copy the WAL's
/// tail; past that it leaves it for the next round.
const TAIL_GATE_WAIT: Duration = Duration::from_millis(200);

pub struct Checkpointer {
    db: Database,
    log: Arc<ReplicationLog>,
    conn: DbConnection,
    /// The log's newest frame when the last checkpoint started.
    done_upto: u64,
}

impl Checkpointer {
    /// A checkpointer for a primary (`None` without a replication log:
    /// such databases checkpoint from their commits, as SQLite does).
    pub fn new(db: &Database) -> Result<Option<Self>, DatabaseError> {
        let Some(log) = db.log() else {
            return Ok(None);
        };
        let conn = db.raw_connection()?;
        // Its checkpoints need no fsync: after an unclean stop a primary's
        // database is rebuilt from the log's snapshot and the log (both
        // synced), never read from the file as a crash left it; and the
        // checkpoint at a clean stop syncs everything before the log is
        // marked closed. An fsync here would only compete with the log's.
        conn.execute_batch("PRAGMA synchronous=OFF")
            .map_err(|e| db.open_error(e))?;
        Ok(Some(Checkpointer {
            db: db.clone(),
            log: log.clone(),
            conn,
            done_upto: log.appended_frame_no(),
        }))
    }

    /// Whether enough frames were committed since the last checkpoint.
    pub fn due(&self) -> bool {
        self.log.appended_frame_no() >= self.done_upto + u64::from(AUTO_CHECKPOINT_PAGES)
    }

    /// Copies what the WAL holds into the database file, as far as no
    /// reader still needs the old pages. The next writer then starts the
    /// WAL over from its beginning when everything was copied.
    pub fn run(&mut self) -> Result<(), DatabaseError> {
        let upto = self.log.appended_frame_no();
        self.checkpoint_passive()?;
        self.done_upto = upto;
        if let Some(_held) = self.db.write_gate().acquire(TAIL_GATE_WAIT) {
            self.checkpoint_passive()?;
        }
        Ok(())
    }

    fn checkpoint_passive(&self) -> Result<(), DatabaseError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(|e| self.db.open_error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libsql_sys::ffi;

    /// Frames in the WAL as the connection that just wrote sees them.
    fn wal_frames(conn: &DbConnection) -> u32 {
        let mut frames = 0u32;
        let rc = unsafe { ffi::libsql_wal_frame_count(conn.handle(), &mut frames) };
        assert_eq!(rc, ffi::SQLITE_OK);
        frames
    }

    #[test]
    fn sessions_leave_checkpoints_to_it_and_the_wal_starts_over() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Database::open_primary(tmp.path(), Duration::from_secs(1)).unwrap();
        let mut checkpointer = Checkpointer::new(&db).unwrap().expect("a primary has one");
        let conn = db.connect().unwrap();
        conn.execute_batch("create table t(x integer primary key, y text)")
            .unwrap();
        assert!(!checkpointer.due());
        let commits = 2 * AUTO_CHECKPOINT_PAGES;
        for i in 0..commits {
            conn.execute("insert into t values (?1, 'row')", [i])
                .unwrap();
        }
        // Past SQLite's threshold, yet no session checkpointed.
        assert!(wal_frames(&conn) >= commits, "{}", wal_frames(&conn));
        assert!(checkpointer.due());

        checkpointer.run().unwrap();
        assert!(!checkpointer.due());
        conn.execute("insert into t values (-1, 'after')", [])
            .unwrap();
        // One small commit in a WAL that started over (it held 2,000+).
        assert!(wal_frames(&conn) < 16, "{}", wal_frames(&conn));
        let rows: u32 = conn
            .query_row("select count(*) from t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, commits + 1);
    }
}
