//! The database on disk: opening libsql connections with the settings sqld
//! promises (WAL, durable commits, foreign keys, the sandbox), with the
//! primary's replication log wrapped around their WAL, and the maintenance
//! the server does on it (checkpoint, compaction into snapshots, sizes).

mod catalog;
pub use catalog::{server_version as catalog_server_version, SERVER_VERSION_NUM};
mod checkpointer;
pub use checkpointer::Checkpointer;
mod sandbox;
pub use sandbox::{limit_value_size, prepare_with_current_schema};
mod write_gate;
pub use write_gate::{WriteGate, WriteGateHeld};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use libsql_sys::rusqlite::OpenFlags;
use libsql_sys::wal::wrapper::WrappedWal;
use libsql_sys::wal::Sqlite3Wal;

use crate::activity::Sessions;
use crate::metrics::Metrics;
use crate::replication::capture::{CaptureWal, CaptureWalManager};
use crate::replication::frame::Frame;
use crate::replication::inject::{checkpoint_if_large, inject_transactions};
use crate::replication::log::{FramesAfter, LogError, LogStart, ReplicationLog};
use crate::replication::snapshot;

/// The file name of the database inside `--db-path`.
pub const DB_FILE: &str = "data.db";
/// The replication log's directory inside `--db-path`.
pub const LOG_DIR: &str = "replication";
/// SQLite's default: checkpoint the WAL into the database every 1000 pages.
const AUTO_CHECKPOINT_PAGES: u32 = 1000;
/// On a primary the `Checkpointer` does that; its sessions checkpoint
/// themselves only if the WAL outgrows it this far.
const BACKSTOP_CHECKPOINT_PAGES: u32 = 10 * AUTO_CHECKPOINT_PAGES;
/// How much of the database file connections read through a memory map.
const MMAP_BYTES: u64 = 1 << 30;
/// Frames read from the log at a time when replaying it after a crash.
const REPLAY_BATCH_FRAMES: usize = 1024;

/// A libsql connection whose WAL writes go through `CaptureWal` (see
/// `CaptureWalManager`).
pub type DbConnection = libsql_sys::Connection<WrappedWal<CaptureWal, Sqlite3Wal>>;

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("cannot create database directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        source: libsql_sys::rusqlite::Error,
    },
    #[error("cannot rebuild {path} from the replication log: {message}")]
    Rebuild { path: PathBuf, message: String },
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Shared description of the database: where it is, how to connect, and
/// the replication log its commits go to.
#[derive(Clone)]
pub struct Database {
    file: PathBuf,
    name: String,
    busy_timeout: Duration,
    log: Option<Arc<ReplicationLog>>,
    /// A replica's sessions never write locally (their writes go to the
    /// primary); only the frame applier does.
    replica: bool,
    /// Sessions queue here for the single write lock.
    write_gate: Arc<WriteGate>,
    /// The server's metrics: one registry per database, so per server
    /// (and per test).
    metrics: Arc<Metrics>,
    /// The server's client sessions, for `pg_stat_activity`.
    sessions: Arc<Sessions>,
}

impl Database {
    /// Opens (creating if needed) the primary's database in `dir`, in WAL
    /// mode (which is persistent), with its replication log.
    pub fn open_primary(dir: &Path, busy_timeout: Duration) -> Result<Self, DatabaseError> {
        let mut db = Database::prepare(dir, busy_timeout)?;
        let (log, start) = ReplicationLog::open(&dir.join(LOG_DIR), &db.file, db.metrics.clone())?;
        if start == LogStart::Recovered {
            db.rebuild_from_log(&log)?;
        }
        db.log = Some(Arc::new(log));
        Ok(db)
    }

    /// After a crash: the database becomes the log's snapshot plus every
    /// intact transaction of the log, exactly the commits the log holds. A
    /// commit that reached the WAL but not the log was never acknowledged;
    /// one in the log but not the WAL is redone.
    fn rebuild_from_log(&self, log: &ReplicationLog) -> Result<(), DatabaseError> {
        let started = std::time::Instant::now();
        let (snapshot, mut after) = log.snapshot();
        let tmp = self.file.with_extension("db.rebuild");
        std::fs::copy(&snapshot, &tmp)
            .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
            .map_err(|source| self.rebuild_error(source))?;
        for suffix in ["-wal", "-shm"] {
            match std::fs::remove_file(self.side_file(suffix)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(self.rebuild_error(e))
                }
                _ => {}
            }
        }
        std::fs::rename(&tmp, &self.file).map_err(|source| self.rebuild_error(source))?;
        let conn = self.raw_connection()?;
        let mut replayed = 0u64;
        while let FramesAfter::Frames(bytes) = log.frames_after(after, REPLAY_BATCH_FRAMES)? {
            let frames = Frame::decode_all(bytes).map_err(|e| self.rebuild_error(e))?;
            inject_transactions(&conn, &frames).map_err(|e| self.rebuild_error(e))?;
            checkpoint_if_large(&conn);
            after = frames.last().map_or(after, |f| f.frame_no);
            replayed += frames.len() as u64;
        }
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| self.open_error(e))?;
        tracing::warn!(
            replayed_frames = replayed,
            frame_no = after,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "recovered after an unclean stop: database rebuilt from the snapshot and the replication log"
        );
        Ok(())
    }

    fn rebuild_error(&self, e: impl std::fmt::Display) -> DatabaseError {
        DatabaseError::Rebuild {
            path: self.file.clone(),
            message: e.to_string(),
        }
    }

    /// A file SQLite keeps beside the database: `-wal` or `-shm`.
    fn side_file(&self, suffix: &str) -> PathBuf {
        let mut path = self.file.clone().into_os_string();
        path.push(suffix);
        path.into()
    }

    /// Opens (creating if needed) a replica's database in `dir`: its
    /// content comes from the primary, frame by frame.
    pub fn open_replica(dir: &Path, busy_timeout: Duration) -> Result<Self, DatabaseError> {
        let mut db = Database::prepare(dir, busy_timeout)?;
        db.replica = true;
        Ok(db)
    }

    pub fn is_replica(&self) -> bool {
        self.replica
    }

    pub fn write_gate(&self) -> &Arc<WriteGate> {
        &self.write_gate
    }

    /// How long a statement waits for a lock before it fails.
    pub fn busy_timeout(&self) -> Duration {
        self.busy_timeout
    }

    /// The connection a replica injects frames through. Its commits are
    /// not synced one by one: the replica syncs the WAL once per batch
    /// (`sync_wal`) before it records the batch as applied.
    pub fn apply_connection(&self) -> Result<DbConnection, DatabaseError> {
        let conn = self.raw_connection()?;
        // One read loads the connection's copy of the WAL index header:
        // injecting numbers frames after the WAL length taken from it, and
        // until a first read that length would be 0 whatever the WAL holds.
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA schema_version")
            .map_err(|e| self.open_error(e))?;
        Ok(conn)
    }

    /// Makes everything written to the WAL so far durable.
    pub fn sync_wal(&self) -> std::io::Result<()> {
        match std::fs::File::open(self.side_file("-wal")) {
            Ok(f) => f.sync_data(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn prepare(dir: &Path, busy_timeout: Duration) -> Result<Self, DatabaseError> {
        std::fs::create_dir_all(dir).map_err(|source| DatabaseError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let db = Database {
            file: dir.join(DB_FILE),
            name: "sqld".to_owned(),
            busy_timeout,
            log: None,
            replica: false,
            write_gate: Arc::default(),
            metrics: Arc::new(Metrics::new()),
            sessions: Arc::default(),
        };
        let conn =
            libsql_sys::rusqlite::Connection::open(&db.file).map_err(|e| db.open_error(e))?;
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .map_err(|source| db.open_error(source))?;
        // SQLite treats a WAL beside an empty database file as stale and
        // ignores it, which would hide frames injected into a new replica:
        // give the file its first page now.
        if std::fs::metadata(&db.file).map(|m| m.len()).unwrap_or(0) == 0 {
            conn.execute_batch(
                "CREATE TABLE sqld_init(x); DROP TABLE sqld_init; PRAGMA wal_checkpoint(TRUNCATE);",
            )
            .map_err(|source| db.open_error(source))?;
        }
        Ok(db)
    }

    pub fn open_error(&self, source: libsql_sys::rusqlite::Error) -> DatabaseError {
        DatabaseError::Open {
            path: self.file.clone(),
            source,
        }
    }

    fn raw_connection(&self) -> Result<DbConnection, DatabaseError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let wal = CaptureWalManager::new(&self.file, self.log.clone());
        let auto_checkpoint = if self.log.is_some() {
            BACKSTOP_CHECKPOINT_PAGES
        } else {
            AUTO_CHECKPOINT_PAGES
        };
        let conn = libsql_sys::Connection::open(&self.file, flags, wal, auto_checkpoint, None)
            .map_err(|e| self.open_error(e))?;
        conn.busy_timeout(self.busy_timeout)
            .map_err(|e| self.open_error(e))?;
        // Durable by default: every commit is fsynced before it is
        // acknowledged. On the primary the replication log is what gets
        // fsynced (once for all the commits waiting, and a crash replays
        // it), so the WAL need not be synced at each commit as well.
        // Foreign keys are enforced, as Postgres users expect. No cache
        // spill: a transaction's pages reach the WAL in one piece, at
        // commit, which is when the replication log takes them. Reads of
        // the database file go through a shared memory map rather than a
        // pread and a copy into each connection's page cache.
        let synchronous = if self.log.is_some() { "NORMAL" } else { "FULL" };
        conn.execute_batch(&format!(
            "PRAGMA synchronous={synchronous}; PRAGMA foreign_keys=ON; PRAGMA cache_spill=OFF; \
             PRAGMA mmap_size={MMAP_BYTES};"
        ))
        .map_err(|e| self.open_error(e))?;
        Ok(conn)
    }

    /// A connection for a client session: the Postgres compatibility
    /// functions and catalog, then the sandbox (last, since it forbids the
    /// ATTACH the catalog needs).
    pub fn connect(&self) -> Result<DbConnection, DatabaseError> {
        let conn = self.raw_connection()?;
        catalog::attach(&conn, &self.name, self.replica).map_err(|e| self.open_error(e))?;
        let log = self.log.clone().filter(|_| !self.replica);
        catalog::install_activity(&conn, self.sessions.clone(), log, &self.name)
            .map_err(|e| self.open_error(e))?;
        if self.replica {
            conn.execute_batch("PRAGMA query_only=ON")
                .map_err(|e| self.open_error(e))?;
        }
        sandbox::install(&conn);
        Ok(conn)
    }

    /// Builds the Postgres catalog on a session's connection before the
    /// first statement that reads it (see `catalog`); a no-op for SQL that
    /// does not name it, or once it is built.
    pub fn ensure_catalog(
        &self,
        conn: &libsql_sys::rusqlite::Connection,
        sql: &str,
    ) -> libsql_sys::rusqlite::Result<()> {
        if !catalog::needed(sql) || catalog::is_built(conn)? {
            return Ok(());
        }
        sandbox::suspended(conn, || {
            // A replica's sessions are query-only; the catalog is the
            // session's own memory, which sqld writes.
            if self.replica {
                conn.execute_batch("PRAGMA query_only=OFF")?;
            }
            let built = catalog::build(conn, &self.name);
            if self.replica {
                conn.execute_batch("PRAGMA query_only=ON")?;
            }
            built
        })
    }

    /// Makes the commits made so far durable in the replication log (group
    /// commit: one fsync for every commit waiting). A no-op without a log.
    pub fn sync_log(&self) -> Result<(), LogError> {
        match &self.log {
            Some(log) => log.sync(),
            None => Ok(()),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The server's client sessions (`pg_stat_activity`).
    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    pub fn log(&self) -> Option<&Arc<ReplicationLog>> {
        self.log.as_ref()
    }

    /// Folds the replication log into a new snapshot when more than
    /// `threshold` frames have accumulated since the last one.
    pub fn compact_if_needed(&self, threshold: u64) -> Result<bool, DatabaseError> {
        let Some(log) = &self.log else {
            return Ok(false);
        };
        if log.frames_since_snapshot() < threshold {
            return Ok(false);
        }
        let conn = self.raw_connection()?;
        // Pin a read snapshot while no commit is between its WAL write and
        // its append: the snapshot then stands for exactly `frame_no`.
        let frame_no = {
            let appends = log.lock_appends();
            conn.execute_batch("BEGIN")
                .map_err(|e| self.open_error(e))?;
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
                .map_err(|e| self.open_error(e))?;
            appends.last_frame_no()
        };
        let tmp = log.dir().join("snapshot.db.tmp");
        let result = snapshot::backup(&conn, &tmp);
        let _ = conn.execute_batch("COMMIT");
        result.map_err(LogError::from)?;
        log.install_snapshot(&tmp, frame_no)?;
        tracing::info!(frame_no, "compacted the replication log into a snapshot");
        Ok(true)
    }

    /// Folds the WAL back into the database file and truncates it, and
    /// marks the log cleanly closed, so a stopped server leaves one file
    /// and a log the next start continues.
    pub fn checkpoint(&self) -> Result<(), DatabaseError> {
        let conn = self.raw_connection()?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| self.open_error(e))?;
        if let Some(log) = &self.log {
            log.close_cleanly()?;
        }
        Ok(())
    }

    /// Sizes in bytes of the database file and of its WAL.
    pub fn file_sizes(&self) -> (u64, u64) {
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        (size(&self.file), size(&self.side_file("-wal")))
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::frame;

    fn count(db: &Database) -> i64 {
        db.connect()
            .unwrap()
            .query_row("select count(*) from t", [], |r| r.get(0))
            .unwrap()
    }

    /// The files of a running primary as a crash would leave them.
    fn crash_copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to.join(LOG_DIR)).unwrap();
        for entry in [
            "data.db",
            "data.db-wal",
            "replication/log.json",
            "replication/frames.log",
            "replication/snapshot.db",
        ] {
            if from.join(entry).exists() {
                std::fs::copy(from.join(entry), to.join(entry)).unwrap();
            }
        }
    }

    #[test]
    fn a_crashed_primary_is_rebuilt_from_its_log() {
        let tmp = tempfile::tempdir().unwrap();
        let live = tmp.path().join("live");
        let db = Database::open_primary(&live, Duration::from_secs(1)).unwrap();
        let conn = db.connect().unwrap();
        conn.execute_batch("create table t(x integer primary key, y text)")
            .unwrap();
        for i in 0..200 {
            conn.execute("insert into t values (?1, 'row')", [i])
                .unwrap();
        }
        db.sync_log().unwrap();
        let log_id = db.log().unwrap().info().log_id;

        // The WAL lost (never synced on the primary): the log redoes it all.
        let lost_wal = tmp.path().join("lost-wal");
        crash_copy(&live, &lost_wal);
        std::fs::remove_file(lost_wal.join("data.db-wal")).unwrap();
        let recovered = Database::open_primary(&lost_wal, Duration::from_secs(1)).unwrap();
        assert_eq!(count(&recovered), 200);
        assert_eq!(recovered.log().unwrap().info().log_id, log_id);

        // A torn record and a transaction cut short at the end of the log
        // are dropped; the commits before them stay.
        let torn = tmp.path().join("torn");
        crash_copy(&live, &torn);
        // Written where the log's records end (the file runs on with zeros
        // written ahead of them), as a crash mid-append would leave it.
        let frames = std::fs::OpenOptions::new()
            .write(true)
            .open(torn.join("replication/frames.log"))
            .unwrap();
        let last = recovered.log().unwrap().info().current_frame_no;
        let mut partial = bytes::BytesMut::new();
        Frame {
            frame_no: last + 1,
            page_no: 2,
            size_after: 0,
            page: bytes::Bytes::from(vec![7u8; frame::PAGE_SIZE]),
        }
        .encode(&mut partial);
        partial.extend_from_slice(&[1, 2, 3]);
        std::os::unix::fs::FileExt::write_all_at(
            &frames,
            &partial,
            last * frame::RECORD_SIZE as u64,
        )
        .unwrap();
        let recovered = Database::open_primary(&torn, Duration::from_secs(1)).unwrap();
        assert_eq!(count(&recovered), 200);
        assert_eq!(recovered.log().unwrap().info().current_frame_no, last);
        let check: String = recovered
            .connect()
            .unwrap()
            .query_row("pragma integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        // And the log goes on from there.
        recovered
            .connect()
            .unwrap()
            .execute_batch("insert into t values (1000, 'after')")
            .unwrap();
        recovered.sync_log().unwrap();
        assert!(recovered.log().unwrap().info().current_frame_no > last);
    }

    #[test]
    fn writes_to_an_attached_database_are_not_replicated() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Database::open_primary(&tmp.path().join("db"), Duration::from_secs(1)).unwrap();
        let frame_no = || db.log().unwrap().info().current_frame_no;
        // Below the sandbox, which would refuse the ATTACH.
        let conn = db.raw_connection().unwrap();
        let other = tmp.path().join("other.db");
        conn.execute("attach ?1 as s", [other.to_str().unwrap()])
            .unwrap();
        let mode: String = conn
            .query_row("pragma s.journal_mode=wal", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let before = frame_no();
        conn.execute_batch("create table s.poison(a); insert into s.poison values (1)")
            .unwrap();
        db.sync_log().unwrap();
        assert_eq!(frame_no(), before, "the attached file's pages were logged");

        // The database's own writes still are, on the same connection.
        conn.execute_batch("create table t(x)").unwrap();
        db.sync_log().unwrap();
        assert!(frame_no() > before);
        // And a database rebuilt from the log is the main one, intact.
        let crashed = tmp.path().join("crashed");
        crash_copy(&tmp.path().join("db"), &crashed);
        std::fs::remove_file(crashed.join("data.db-wal")).unwrap();
        drop(conn);
        let rebuilt = Database::open_primary(&crashed, Duration::from_secs(1)).unwrap();
        let conn = rebuilt.raw_connection().unwrap();
        let tables: String = conn
            .query_row("select group_concat(name) from sqlite_schema", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(tables, "t");
        let check: String = conn
            .query_row("pragma integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }
    #[test]
    fn compaction_keeps_frames_the_archiver_has_not_uploaded() {
        let tmp = tempfile::tempdir().unwrap();
        let live = tmp.path().join("live");
        let db = Database::open_primary(&live, Duration::from_secs(1)).unwrap();
        let log = db.log().unwrap().clone();
        log.hold_for_archive(0, 1_000_000);
        let conn = db.connect().unwrap();
        conn.execute_batch("create table t(x integer primary key, y text)")
            .unwrap();
        for i in 0..100 {
            conn.execute("insert into t values (?1, 'row')", [i])
                .unwrap();
        }
        db.sync_log().unwrap();
        assert!(db.compact_if_needed(1).unwrap());
        let (_, snapshot_frame_no) = log.snapshot();
        assert!(snapshot_frame_no > 0);
        // Still readable from the first frame, and not counted again.
        assert!(matches!(
            log.frames_after(0, 10).unwrap(),
            FramesAfter::Frames(_)
        ));
        assert!(!db.compact_if_needed(1).unwrap());

        // A crash keeps them too, and recovery replays from the snapshot.
        let crashed = tmp.path().join("crashed");
        crash_copy(&live, &crashed);
        let recovered = Database::open_primary(&crashed, Duration::from_secs(1)).unwrap();
        assert_eq!(count(&recovered), 100);
        let recovered_log = recovered.log().unwrap();
        assert!(matches!(
            recovered_log.frames_after(0, 10).unwrap(),
            FramesAfter::Frames(_)
        ));

        // Once archived, the next compaction lets them go.
        log.set_archived(log.info().current_frame_no);
        conn.execute("insert into t values (1000, 'row')", [])
            .unwrap();
        db.sync_log().unwrap();
        assert!(db.compact_if_needed(1).unwrap());
        assert!(matches!(
            log.frames_after(0, 10).unwrap(),
            FramesAfter::SnapshotNeeded
        ));
    }
}
