//! The database on disk: opening libsql connections with the settings sqld
//! promises (WAL, `synchronous=FULL`, foreign keys, the sandbox), with the
//! primary's replication log wrapped around their WAL, and the maintenance
//! the server does on it (checkpoint, compaction into snapshots, sizes).

mod catalog;
pub use catalog::server_version as catalog_server_version;
mod sandbox;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use libsql_sys::rusqlite::OpenFlags;
use libsql_sys::wal::wrapper::{WalWrapper, WrappedWal};
use libsql_sys::wal::{Sqlite3Wal, Sqlite3WalManager};

use crate::replication::capture::CaptureWal;
use crate::replication::log::{LogError, ReplicationLog};
use crate::replication::snapshot;

/// The file name of the database inside `--db-path`.
const DB_FILE: &str = "data.db";
/// The replication log's directory inside `--db-path`.
const LOG_DIR: &str = "replication";
/// SQLite's default: checkpoint the WAL into the database every 1000 pages.
const AUTO_CHECKPOINT_PAGES: u32 = 1000;

/// A libsql connection whose WAL writes go through `CaptureWal`.
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
}

impl Database {
    /// Opens (creating if needed) the primary's database in `dir`, in WAL
    /// mode (which is persistent), with its replication log.
    pub fn open_primary(dir: &Path, busy_timeout: Duration) -> Result<Self, DatabaseError> {
        let mut db = Database::prepare(dir, busy_timeout)?;
        db.log = Some(Arc::new(ReplicationLog::open(
            &dir.join(LOG_DIR),
            &db.file,
        )?));
        Ok(db)
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

    /// The connection a replica injects frames through.
    pub fn apply_connection(&self) -> Result<DbConnection, DatabaseError> {
        self.raw_connection()
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

    fn open_error(&self, source: libsql_sys::rusqlite::Error) -> DatabaseError {
        DatabaseError::Open {
            path: self.file.clone(),
            source,
        }
    }

    fn raw_connection(&self) -> Result<DbConnection, DatabaseError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let wal = WalWrapper::new(CaptureWal::new(self.log.clone()), Sqlite3WalManager::new());
        let conn =
            libsql_sys::Connection::open(&self.file, flags, wal, AUTO_CHECKPOINT_PAGES, None)
                .map_err(|e| self.open_error(e))?;
        conn.busy_timeout(self.busy_timeout)
            .map_err(|e| self.open_error(e))?;
        // Durable by default: every commit is fsynced before it is
        // acknowledged. Foreign keys are enforced, as Postgres users expect.
        // No cache spill: a transaction's pages reach the WAL in one piece,
        // at commit, which is when the replication log takes them.
        conn.execute_batch(
            "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA cache_spill=OFF;",
        )
        .map_err(|e| self.open_error(e))?;
        Ok(conn)
    }

    /// A connection for a client session: the Postgres compatibility
    /// functions and catalog, then the sandbox (last, since it forbids the
    /// ATTACH the catalog needs).
    pub fn connect(&self) -> Result<DbConnection, DatabaseError> {
        let conn = self.raw_connection()?;
        catalog::install(&conn, &self.name).map_err(|e| self.open_error(e))?;
        if self.replica {
            conn.execute_batch("PRAGMA query_only=ON")
                .map_err(|e| self.open_error(e))?;
        }
        sandbox::install(&conn);
        Ok(conn)
    }

    /// Makes the commits made so far durable in the replication log (group
    /// commit: one fsync for every commit waiting). A no-op without a log.
    pub fn sync_log(&self) -> Result<(), LogError> {
        match &self.log {
            Some(log) => log.sync(),
            None => Ok(()),
        }
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
        result?;
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
        let mut wal = self.file.clone().into_os_string();
        wal.push("-wal");
        (size(&self.file), size(Path::new(&wal)))
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}
