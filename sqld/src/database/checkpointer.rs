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

use std::time::Duration;

use super::{Database, DatabaseError, DbConnection, AUTO_CHECKPOINT_PAGES};

/// How long the checkpointer queues for the write gate to copy the WAL's
/// tail; past that it leaves it for the next round.
const TAIL_GATE_WAIT: Duration = Duration::from_millis(200);

pub struct Checkpointer {
    db: Database,
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
        Ok(Some(Checkpointer {
            db: db.clone(),
            conn: db.raw_connection()?,
            done_upto: log.appended_frame_no(),
        }))
    }

    /// Whether enough frames were committed since the last checkpoint.
    pub fn due(&self) -> bool {
        self.db.log().is_some_and(|log| {
            log.appended_frame_no() >= self.done_upto + u64::from(AUTO_CHECKPOINT_PAGES)
        })
    }

    /// Copies what the WAL holds into the database file, as far as no
    /// reader still needs the old pages. The next writer then starts the
    /// WAL over from its beginning when everything was copied.
    pub fn run(&mut self) -> Result<(), DatabaseError> {
        let upto = self.db.log().map_or(0, |log| log.appended_frame_no());
        self.checkpoint_passive()?;
        self.done_upto = upto;
        let gate = self.db.write_gate();
        if gate.acquire(TAIL_GATE_WAIT) {
            let tail = self.checkpoint_passive();
            gate.release();
            tail?;
        }
        Ok(())
    }

    fn checkpoint_passive(&self) -> Result<(), DatabaseError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(|e| self.db.open_error(e))
    }
}
