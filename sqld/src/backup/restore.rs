//! `sqld restore`: rebuilds a database from the backup store at a
//! committed point (the latest, a frame, or a time), never inside a
//! transaction. It downloads the newest snapshot at or before the target
//! and applies the segments after it, transaction by transaction, through
//! the WAL insert API replicas use, stopping at the last commit the target
//! allows. Every object is verified (zstd checksum, segment CRC, frame
//! CRCs, frame order, names against contents) before anything of it is
//! applied; a corrupt one fails the restore with its name.
//!
//! The database is built in `<db-path>.restoring` and moved into place
//! only once complete, without a replication log: the first start on it
//! begins a new log id (a new primary), snapshotting the restored state.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::inventory::{Inventory, LogBackup};
use super::naming::{SegmentName, SnapshotName};
use super::segment::{self, Segment};
use super::store::BackupStore;
use super::BackupError;
use crate::database::Database;
use crate::replication::frame::Frame;
use crate::replication::inject::{checkpoint_if_large, inject_transactions};

/// The point to restore to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Latest,
    /// The last commit at or before this frame.
    Frame(u64),
    /// The last commit at or before this Unix time (milliseconds).
    Time(u64),
}

/// What a restore rebuilt.
#[derive(Debug)]
pub struct Restored {
    pub log_id: String,
    pub snapshot_frame_no: u64,
    /// The last commit applied.
    pub frame_no: u64,
    /// When it committed.
    pub time_ms: u64,
    pub segments: usize,
    /// Compressed bytes downloaded.
    pub downloaded: u64,
    pub elapsed: Duration,
}

/// Segments downloaded ahead of the one being applied.
const PREFETCH: usize = 4;
/// The database file a restore leaves in its directory.
pub const DB_FILE: &str = "data.db";

/// Restores into `db_path`, which must not hold a database yet.
pub async fn restore(
    store: &BackupStore,
    target: Target,
    log_id: Option<&str>,
    db_path: &Path,
) -> Result<Restored, BackupError> {
    let started = Instant::now();
    if db_path.join(DB_FILE).exists() {
        return Err(BackupError::Exists(db_path.to_owned()));
    }
    let inventory = Inventory::new(store.list().await?);
    let log = choose_log(&inventory, target, log_id)?;
    let snapshot = choose_snapshot(log, target)?;
    let generation = log.generation(snapshot);
    if let Target::Frame(n) = target {
        if n > generation.last.frame_no {
            return Err(BackupError::Unreachable(format!(
                "frame {n} is past the last archived frame {} of log {}",
                generation.last.frame_no, log.log_id
            )));
        }
    }
    let segments: Vec<SegmentName> = generation
        .segments
        .iter()
        .filter(|s| match target {
            Target::Latest => true,
            Target::Frame(n) => s.first_frame_no <= n,
            Target::Time(t) => s.first_time_ms <= t,
        })
        .map(|s| (*s).clone())
        .collect();

    let building = building_dir(db_path);
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(&building).map_err(BackupError::Local)?;
    let result = build(store, snapshot, segments, target, &building).await;
    let finished = result.and_then(|(frame_no, time_ms, downloaded, count)| {
        std::fs::create_dir_all(db_path).map_err(BackupError::Local)?;
        std::fs::rename(building.join(DB_FILE), db_path.join(DB_FILE))
            .map_err(BackupError::Local)?;
        Ok(Restored {
            log_id: log.log_id.clone(),
            snapshot_frame_no: snapshot.frame_no,
            frame_no,
            time_ms,
            segments: count,
            downloaded,
            elapsed: started.elapsed(),
        })
    });
    let _ = std::fs::remove_dir_all(&building);
    finished
}

fn building_dir(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push(".restoring");
    name.into()
}

fn choose_log<'a>(
    inventory: &'a Inventory,
    target: Target,
    log_id: Option<&str>,
) -> Result<&'a LogBackup, BackupError> {
    if let Some(id) = log_id {
        return inventory
            .log(id)
            .ok_or_else(|| BackupError::Empty(format!(" for log id {id}")));
    }
    let mut logs = inventory
        .logs
        .iter()
        .rev()
        .filter(|l| !l.snapshots.is_empty());
    let chosen = match target {
        // The log that was live then: the newest one begun by that time.
        Target::Time(t) => logs.find(|l| l.first_time_ms() <= t),
        _ => logs.next(),
    };
    chosen.ok_or_else(|| match target {
        Target::Time(_) => BackupError::Unreachable(
            "the time is before the first recoverable point of the backup".into(),
        ),
        _ => BackupError::Empty(String::new()),
    })
}

fn choose_snapshot(log: &LogBackup, target: Target) -> Result<&SnapshotName, BackupError> {
    let chosen = match target {
        Target::Latest => log
            .snapshots
            .iter()
            .max_by_key(|s| (log.generation(s).last.frame_no, s.frame_no)),
        Target::Frame(n) => log.snapshots.iter().rev().find(|s| s.frame_no <= n),
        Target::Time(t) => log.snapshots.iter().rev().find(|s| s.time_ms <= t),
    };
    chosen.ok_or_else(|| {
        BackupError::Unreachable(format!(
            "{target:?} is before the first recoverable point of log {}",
            log.log_id
        ))
    })
}

/// Downloads and applies; returns the last commit applied, the bytes
/// downloaded and the segments used.
async fn build(
    store: &BackupStore,
    snapshot: &SnapshotName,
    segments: Vec<SegmentName>,
    target: Target,
    dir: &Path,
) -> Result<(u64, u64, u64, usize), BackupError> {
    let key = snapshot.key();
    let compressed = store.get(&key).await?;
    let mut downloaded = compressed.len() as u64;
    let db_file = dir.join(DB_FILE);
    tokio::task::spawn_blocking(move || -> Result<(), BackupError> {
        let file = std::fs::File::create(&db_file).map_err(BackupError::Local)?;
        let mut out = std::io::BufWriter::new(file);
        zstd::stream::copy_decode(&compressed[..], &mut out).map_err(|e| BackupError::Corrupt {
            key,
            reason: e.to_string(),
        })?;
        let file = out
            .into_inner()
            .map_err(|e| BackupError::Local(e.into_error()))?;
        file.sync_all().map_err(BackupError::Local)
    })
    .await
    .map_err(|e| BackupError::Apply(e.to_string()))??;

    let (tx, mut rx) = tokio::sync::mpsc::channel::<(SegmentName, Segment)>(PREFETCH);
    let applier = Applier {
        dir: dir.to_owned(),
        target,
        expected: snapshot.frame_no + 1,
        last: (snapshot.frame_no, snapshot.time_ms),
    };
    let apply = std::thread::spawn(move || applier.run(&mut rx));
    let count = segments.len();
    let mut downloads = futures::stream::iter(segments)
        .map(|name| async move {
            let key = name.key();
            let bytes = store.get(&key).await?;
            let len = bytes.len() as u64;
            let decoded = tokio::task::spawn_blocking(move || segment::decode(&bytes))
                .await
                .map_err(|e| BackupError::Apply(e.to_string()))?
                .map_err(|e| BackupError::Corrupt {
                    key,
                    reason: e.to_string(),
                })?;
            Ok::<_, BackupError>((name, decoded, len))
        })
        .buffered(PREFETCH);
    let mut failure = None;
    while let Some(next) = downloads.next().await {
        match next {
            Ok((name, segment, len)) => {
                downloaded += len;
                if tx.send((name, segment)).await.is_err() {
                    break; // The applier reached the target (or failed).
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let applied = tokio::task::spawn_blocking(move || apply.join())
        .await
        .map_err(|e| BackupError::Apply(e.to_string()))?
        .map_err(|_| BackupError::Apply("the applying thread panicked".into()))?;
    let (frame_no, time_ms) = applied?;
    if let Some(e) = failure {
        return Err(e);
    }
    Ok((frame_no, time_ms, downloaded, count))
}

/// Applies segments on a thread of its own (SQLite calls block).
struct Applier {
    dir: PathBuf,
    target: Target,
    /// The first frame of the next transaction to apply.
    expected: u64,
    /// The last commit applied (frame, time).
    last: (u64, u64),
}

impl Applier {
    fn run(
        mut self,
        rx: &mut tokio::sync::mpsc::Receiver<(SegmentName, Segment)>,
    ) -> Result<(u64, u64), BackupError> {
        let db = Database::open_replica(&self.dir, Duration::from_secs(5))?;
        let conn = db.apply_connection()?;
        while let Some((name, segment)) = rx.blocking_recv() {
            let done = self.apply(&conn, &name, segment)?;
            checkpoint_if_large(&conn);
            if done {
                break;
            }
        }
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| BackupError::Apply(e.to_string()))?;
        Ok(self.last)
    }

    /// Applies the segment's transactions the target allows; true once
    /// past the target.
    fn apply(
        &mut self,
        conn: &libsql_sys::rusqlite::Connection,
        name: &SegmentName,
        segment: Segment,
    ) -> Result<bool, BackupError> {
        let corrupt = |reason: String| BackupError::Corrupt {
            key: name.key(),
            reason,
        };
        let (first, last) = match (segment.frames.first(), segment.frames.last()) {
            (Some(f), Some(l)) => (f.frame_no, l.frame_no),
            _ => return Err(corrupt("no frames".into())),
        };
        if first != name.first_frame_no || last != name.last_frame_no {
            return Err(corrupt(format!(
                "holds frames {first}..={last}, its name says {}..={}",
                name.first_frame_no, name.last_frame_no
            )));
        }
        let commit_frames: Vec<u64> = segment
            .frames
            .iter()
            .filter(|f| f.is_commit())
            .map(|f| f.frame_no)
            .collect();
        if commit_frames
            != segment
                .commits
                .iter()
                .map(|c| c.frame_no)
                .collect::<Vec<_>>()
        {
            return Err(corrupt("its commit index does not match its frames".into()));
        }
        let mut start = 0;
        let mut pending: Vec<Frame> = Vec::new();
        let mut commits = segment.commits.iter();
        for (i, frame) in segment.frames.iter().enumerate() {
            if !frame.is_commit() {
                continue;
            }
            let commit = commits.next().expect("checked against the frames");
            let txn = &segment.frames[start..=i];
            start = i + 1;
            if commit.frame_no < self.expected {
                continue; // Already in the snapshot.
            }
            if txn[0].frame_no != self.expected {
                return Err(BackupError::Unreachable(format!(
                    "frames {}..{} are missing from the backup (before {})",
                    self.expected,
                    txn[0].frame_no,
                    name.key()
                )));
            }
            let beyond = match self.target {
                Target::Latest => false,
                Target::Frame(n) => commit.frame_no > n,
                Target::Time(t) => commit.time_ms > t,
            };
            if beyond {
                self.flush(conn, &mut pending)?;
                return Ok(true);
            }
            pending.extend_from_slice(txn);
            self.expected = commit.frame_no + 1;
            self.last = (commit.frame_no, commit.time_ms);
        }
        self.flush(conn, &mut pending)?;
        Ok(false)
    }

    fn flush(
        &self,
        conn: &libsql_sys::rusqlite::Connection,
        pending: &mut Vec<Frame>,
    ) -> Result<(), BackupError> {
        inject_transactions(conn, pending).map_err(|e| BackupError::Apply(e.to_string()))?;
        pending.clear();
        Ok(())
    }
}
