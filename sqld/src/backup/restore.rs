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

use bytes::Bytes;
use futures::StreamExt;

use super::inventory::{Inventory, LogBackup};
use super::naming::{SegmentName, SnapshotName};
use super::segment::{self, Segment};
use super::store::BackupStore;
use super::BackupError;
use crate::database::Database;
use crate::replication::frame::Frame;
use crate::replication::inject::{checkpoint_if_over, inject_transactions};

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
    /// Where the time went.
    pub phases: Phases,
}

/// How long each part of a restore took. Downloads overlap the rest: the
/// snapshot is decompressed as it arrives, and segments are fetched while
/// the snapshot is written and while earlier segments are applied.
#[derive(Debug, Default, Clone, Copy)]
pub struct Phases {
    /// Downloading, decompressing and writing the snapshot, then its fsync.
    pub snapshot: Duration,
    pub snapshot_sync: Duration,
    /// Applying segments, waiting for their download included.
    pub segments: Duration,
    /// Of which waiting for a segment to arrive.
    pub segments_waiting: Duration,
    /// The final checkpoint into the database file (and its fsync).
    pub checkpoint: Duration,
}

/// Segments downloaded ahead of the one being applied.
const PREFETCH: usize = 4;
/// Snapshot chunks (as the store's client yields them, tens of KiB) held
/// between the download and the decompression.
const SNAPSHOT_CHUNKS_AHEAD: usize = 256;
/// The restore's WAL is checkpointed into the database once this large
/// (256 MiB; the replication default is 8 MiB): nothing reads it
/// meanwhile, and each checkpoint writes the pages changed since the last
/// one and fsyncs twice. Bounds the extra disk space a restore takes.
const RESTORE_CHECKPOINT_FRAMES: u32 = 64 * 1024;
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
    let finished = result.and_then(|(frame_no, time_ms, downloaded, count, phases)| {
        std::fs::create_dir_all(db_path).map_err(BackupError::Local)?;
        std::fs::rename(building.join(DB_FILE), db_path.join(DB_FILE))
            .map_err(BackupError::Local)?;
        // The rename is durable once the directory is.
        std::fs::File::open(db_path)
            .and_then(|d| d.sync_all())
            .map_err(BackupError::Local)?;
        Ok(Restored {
            log_id: log.log_id.clone(),
            snapshot_frame_no: snapshot.frame_no,
            frame_no,
            time_ms,
            segments: count,
            downloaded,
            elapsed: started.elapsed(),
            phases,
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
/// downloaded, the segments used and where the time went. The segments
/// are fetched from the start, while the snapshot is being written.
async fn build(
    store: &BackupStore,
    snapshot: &SnapshotName,
    segments: Vec<SegmentName>,
    target: Target,
    dir: &Path,
) -> Result<(u64, u64, u64, usize, Phases), BackupError> {
    let count = segments.len();
    let (tx, rx) = tokio::sync::mpsc::channel::<(SegmentName, Segment)>(PREFETCH);
    let apply = async {
        let mut phases = Phases::default();
        let (snapshot_bytes, sync) = write_snapshot(store, snapshot, &dir.join(DB_FILE)).await?;
        phases.snapshot = sync.0;
        phases.snapshot_sync = sync.1;
        let applier = Applier {
            dir: dir.to_owned(),
            target,
            expected: snapshot.frame_no + 1,
            last: (snapshot.frame_no, snapshot.time_ms),
            phases,
        };
        let mut rx = rx;
        let apply = std::thread::spawn(move || applier.run(&mut rx));
        let applied = tokio::task::spawn_blocking(move || apply.join())
            .await
            .map_err(|e| BackupError::Apply(e.to_string()))?
            .map_err(|_| BackupError::Apply("the applying thread panicked".into()))?;
        applied.map(|(last, phases)| (last, phases, snapshot_bytes))
    };
    let (fetched, applied) = tokio::join!(fetch_segments(store, segments, tx), apply);
    let ((frame_no, time_ms), phases, snapshot_bytes) = applied?;
    let segment_bytes = fetched?;
    Ok((
        frame_no,
        time_ms,
        snapshot_bytes + segment_bytes,
        count,
        phases,
    ))
}

/// Downloads, verifies and hands over segments in order, `PREFETCH` at a
/// time; stops early when the applier is done (it reached the target, or
/// failed). Returns the compressed bytes downloaded.
async fn fetch_segments(
    store: &BackupStore,
    segments: Vec<SegmentName>,
    tx: tokio::sync::mpsc::Sender<(SegmentName, Segment)>,
) -> Result<u64, BackupError> {
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
    let mut downloaded = 0;
    while let Some(next) = downloads.next().await {
        let (name, segment, len) = next?;
        downloaded += len;
        if tx.send((name, segment)).await.is_err() {
            break;
        }
    }
    Ok(downloaded)
}

/// Writes the snapshot's database file, decompressing it as it downloads,
/// and fsyncs it. Returns the compressed bytes and the time taken (in all,
/// and by the fsync). The zstd content checksum is verified at the end of
/// the stream, before anything is applied on top.
async fn write_snapshot(
    store: &BackupStore,
    snapshot: &SnapshotName,
    db_file: &Path,
) -> Result<(u64, (Duration, Duration)), BackupError> {
    let started = Instant::now();
    let key = snapshot.key();
    let mut chunks = store.get_stream(&key).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(SNAPSHOT_CHUNKS_AHEAD);
    let db_file = db_file.to_owned();
    let corrupt_key = key.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<Duration, BackupError> {
        let file = std::fs::File::create(&db_file).map_err(BackupError::Local)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let input = ChunkReader {
            rx,
            chunk: Bytes::new(),
        };
        zstd::stream::copy_decode(input, &mut out).map_err(|e| BackupError::Corrupt {
            key: corrupt_key,
            reason: e.to_string(),
        })?;
        let file = out
            .into_inner()
            .map_err(|e| BackupError::Local(e.into_error()))?;
        let syncing = Instant::now();
        file.sync_all().map_err(BackupError::Local)?;
        Ok(syncing.elapsed())
    });
    let mut downloaded = 0u64;
    let mut failure = None;
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(chunk) => {
                downloaded += chunk.len() as u64;
                if tx.send(chunk).await.is_err() {
                    break; // The decoder stopped: its error says why.
                }
            }
            Err(e) => {
                failure = Some(BackupError::Store(e));
                break;
            }
        }
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| BackupError::Apply(e.to_string()))?;
    // A download cut short is the store's failure, not corruption.
    if let Some(e) = failure {
        return Err(e);
    }
    let sync = written?;
    Ok((downloaded, (started.elapsed(), sync)))
}

/// The downloaded chunks of an object as one `Read`, for the decoder.
struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    chunk: Bytes,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(next) => self.chunk = next,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// Applies segments on a thread of its own (SQLite calls block).
struct Applier {
    dir: PathBuf,
    target: Target,
    /// The first frame of the next transaction to apply.
    expected: u64,
    /// The last commit applied (frame, time).
    last: (u64, u64),
    phases: Phases,
}

impl Applier {
    fn run(
        mut self,
        rx: &mut tokio::sync::mpsc::Receiver<(SegmentName, Segment)>,
    ) -> Result<((u64, u64), Phases), BackupError> {
        let db = Database::open_replica(&self.dir, Duration::from_secs(5))?;
        let conn = db.apply_connection()?;
        let started = Instant::now();
        loop {
            let waiting = Instant::now();
            let Some((name, segment)) = rx.blocking_recv() else {
                break;
            };
            self.phases.segments_waiting += waiting.elapsed();
            let done = self.apply(&conn, &name, segment)?;
            checkpoint_if_over(&conn, RESTORE_CHECKPOINT_FRAMES);
            if done {
                break;
            }
        }
        self.phases.segments = started.elapsed();
        let checkpoint = Instant::now();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| BackupError::Apply(e.to_string()))?;
        self.phases.checkpoint = checkpoint.elapsed();
        Ok((self.last, self.phases))
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
