//! Continuous backup to object storage and point-in-time restore. The
//! primary's replication log already holds every committed frame,
//! CRC-checked, and snapshots of the database: the `archiver` ships both to
//! a `store` (S3-compatible or a directory) under names that say what they
//! hold (`naming`), in a compressed, checksummed format (`segment`), dating
//! each commit (`timeline`); `retention` deletes what the retention window
//! no longer needs. `restore` rebuilds a database at any committed point
//! from what the store holds (`inventory`), and `seed` a new replica's
//! database (`--bootstrap-from-backup`); `cli` is the `sqld restore` and
//! `sqld backup` commands.

pub mod archiver;
pub mod cli;
pub mod inventory;
pub mod naming;
pub mod restore;
pub mod retention;
pub mod seed;
pub mod segment;
pub mod store;
pub mod timeline;

use std::path::PathBuf;

use crate::database::DatabaseError;
use crate::replication::log::LogError;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("invalid backup URL {url}: {message}")]
    Url { url: String, message: String },
    #[error("backup store: {0}")]
    Store(#[from] object_store::Error),
    #[error("backup object {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("the backup store holds nothing to restore{0}")]
    Empty(String),
    #[error("cannot restore: {0}")]
    Unreachable(String),
    #[error("{0} already holds a database; restore into a new directory")]
    Exists(PathBuf),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Database(#[from] DatabaseError),
    #[error("local I/O: {0}")]
    Local(std::io::Error),
    #[error("applying frames: {0}")]
    Apply(String),
}

/// Starts continuous backup when `--backup-url` is set, on a primary (a
/// replica's frames are its primary's, archived there).
pub fn start(
    config: &crate::config::Config,
    role: &crate::role::Role,
    shutdown: crate::shutdown::Shutdown,
) -> Result<Option<tokio::task::JoinHandle<()>>, BackupError> {
    let Some(url) = &config.backup_url else {
        return Ok(None);
    };
    let crate::role::Role::Primary(primary) = role else {
        tracing::warn!("--backup-url is ignored on a replica: its primary archives the log");
        return Ok(None);
    };
    let store = store::BackupStore::open(url)?;
    let archiver_config = archiver::ArchiverConfig {
        interval: config.backup_interval,
        segment_bytes: config.backup_segment_size,
        generation_frames: config.backup_generation_frames,
        retention: config.backup_retention,
        max_local_frames: config.backup_max_local_frames,
    };
    Ok(Some(archiver::spawn(
        store,
        primary.log.clone(),
        archiver_config,
        shutdown,
    )))
}
