//! The database on disk: opening libsql connections with the settings sqld
//! promises (WAL, `synchronous=FULL`, foreign keys, the sandbox), and the
//! maintenance the server does on it (checkpoint, sizes).

mod catalog;
pub use catalog::server_version as catalog_server_version;
mod sandbox;

use std::path::{Path, PathBuf};
use std::time::Duration;

use libsql_sys::rusqlite::{Connection, OpenFlags};

/// The file name of the database inside `--db-path`.
const DB_FILE: &str = "data.db";

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
}

/// Shared description of the database: where it is and how to connect.
#[derive(Debug, Clone)]
pub struct Database {
    file: PathBuf,
    name: String,
    busy_timeout: Duration,
}

impl Database {
    /// Opens (creating if needed) the database in `dir` and switches it to
    /// WAL mode, which is persistent, so every later connection uses it.
    pub fn open(dir: &Path, busy_timeout: Duration) -> Result<Self, DatabaseError> {
        std::fs::create_dir_all(dir).map_err(|source| DatabaseError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let db = Database {
            file: dir.join(DB_FILE),
            name: "sqld".to_owned(),
            busy_timeout,
        };
        let conn = db.raw_connection()?;
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .map_err(|source| db.open_error(source))?;
        Ok(db)
    }

    fn open_error(&self, source: libsql_sys::rusqlite::Error) -> DatabaseError {
        DatabaseError::Open {
            path: self.file.clone(),
            source,
        }
    }

    fn raw_connection(&self) -> Result<Connection, DatabaseError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(&self.file, flags).map_err(|e| self.open_error(e))?;
        conn.busy_timeout(self.busy_timeout)
            .map_err(|e| self.open_error(e))?;
        // Durable by default: every commit is fsynced before it is
        // acknowledged. Foreign keys are enforced, as Postgres users expect.
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(|e| self.open_error(e))?;
        Ok(conn)
    }

    /// A connection for a client session: the Postgres compatibility
    /// functions and catalog, then the sandbox (last, since it forbids the
    /// ATTACH the catalog needs).
    pub fn connect(&self) -> Result<Connection, DatabaseError> {
        let conn = self.raw_connection()?;
        catalog::install(&conn, &self.name).map_err(|e| self.open_error(e))?;
        sandbox::install(&conn);
        Ok(conn)
    }

    /// Folds the WAL back into the database file and truncates it, so a
    /// stopped server leaves a single file behind.
    pub fn checkpoint(&self) -> Result<(), DatabaseError> {
        let conn = self.raw_connection()?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| self.open_error(e))
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
