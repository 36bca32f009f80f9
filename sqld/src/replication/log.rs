//! The primary's replication log: every committed frame, numbered by a
//! global, monotonically increasing `frame_no`, in a file beside the
//! database, and folded into snapshots so it stays bounded.
//!
//! Files in `<db-path>/replication/`:
//! - `log.json`: the log id, the frame_no the current snapshot stands for,
//!   and whether the server stopped cleanly;
//! - `frames.log`: fixed-size frame records after the snapshot, followed
//!   by zeros written ahead of them (the end is where the records stop);
//! - `snapshot.db`: the database as of `snapshot_frame_no`.
//!
//! With continuous backup on, compaction keeps the frames the archiver has
//! not uploaded yet (up to a bound), so the file may start before the
//! snapshot (`frames_from` in `log.json`).
//!
//! Appends happen inside the committing connection's SQLite write lock (so
//! frames are numbered in commit order); fsync happens after the lock is
//! released, shared by every commit waiting at that moment (group commit).
//! Only fsynced frames are served.
//!
//! A commit is written to the log before SQLite writes it to the WAL, and
//! acknowledged only once the log is fsynced. After a crash the log keeps
//! its intact transactions and the database is rebuilt from the snapshot
//! plus the log, so the two agree again and the log id stays: replicas
//! resume. (The WAL itself is not synced per commit on the primary: the log
//! is what makes a commit durable.) Only a missing log starts a new one (a
//! new id and snapshot), which replicas answer with a re-bootstrap.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::epoch::{first_epoch, EpochStart, FIRST_EPOCH};
use super::frame::{Frame, RECORD_SIZE};
use super::snapshot::SnapshotError;
use super::sync::SyncReplicas;
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("replication log I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("replication log metadata {path} is unreadable: {message}")]
    Meta { path: PathBuf, message: String },
    #[error("snapshot failed: {0}")]
    Snapshot(#[from] SnapshotError),
    #[error("{0}")]
    Refused(WriteRefusal),
}

/// Why a primary takes no writes now: it learned of a newer epoch, it is
/// cut off (`--fence-after`), or it is handing over (a switchover).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteRefusal {
    Fenced(u64),
    Isolated(std::time::Duration),
    HandingOver,
}

impl std::fmt::Display for WriteRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteRefusal::Fenced(epoch) => write!(
                f,
                "this server is no longer the primary: another server was promoted (epoch {epoch}); write through the new primary"
            ),
            WriteRefusal::Isolated(silent) => write!(
                f,
                "no replica or orchestrator has reached this primary for {silent:?} (--fence-after): \
                 it takes no writes a failover on the other side of a partition could discard"
            ),
            WriteRefusal::HandingOver => write!(
                f,
                "this server is handing the primary role to another (switchover); write through the new primary"
            ),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_owned(),
        source,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Meta {
    log_id: String,
    snapshot_frame_no: u64,
    clean_shutdown: bool,
    /// The first frame in `frames.log` when compaction kept frames the
    /// backup archiver still needed; otherwise the one after the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    frames_from: Option<u64>,
    /// The epoch this log is in, and where each epoch after the first
    /// began (`replication::epoch`).
    #[serde(default = "first_epoch")]
    epoch: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    history: Vec<EpochStart>,
}

impl Meta {
    fn first_frame_no(&self) -> u64 {
        self.frames_from.unwrap_or(self.snapshot_frame_no + 1)
    }
}

/// How `ReplicationLog::open` found the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStart {
    /// After a clean stop: the database and the log agree.
    Continued,
    /// No log (or no snapshot) yet: a new log id, snapshotting the database.
    New,
    /// After a crash: the database may hold a commit the log lacks, or a
    /// torn one; it must be rebuilt from the snapshot and the log's intact
    /// transactions (`Database::open_primary` does it).
    Recovered,
}

/// What `/v1/replication/info` reports.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogInfo {
    pub log_id: String,
    /// The newest durable frame.
    pub current_frame_no: u64,
    /// The snapshot holds everything up to and including this frame.
    pub snapshot_frame_no: u64,
    /// The log's epoch, and where every epoch after the first began.
    #[serde(default = "first_epoch")]
    pub epoch: u64,
    #[serde(default)]
    pub history: Vec<EpochStart>,
    /// The oldest frame still served (0 from a server that does not say).
    #[serde(default)]
    pub oldest_frame_no: u64,
}

impl LogInfo {
    /// The oldest frame a replica can ask for instead of bootstrapping.
    pub fn first_frame_no(&self) -> u64 {
        match self.oldest_frame_no {
            0 => self.snapshot_frame_no + 1,
            n => n,
        }
    }
}

/// What a replica asking for frames after `n` gets.
#[derive(Debug)]
pub enum FramesAfter {
    /// Encoded frame records, whole transactions only.
    Frames(Bytes),
    /// Nothing newer than `n` yet.
    UpToDate,
    /// Frames right after `n` were folded into the snapshot: bootstrap.
    SnapshotNeeded,
}

pub struct ReplicationLog {
    dir: PathBuf,
    meta: RwLock<Meta>,
    /// Held across a commit's WAL write and its append, so a snapshot taken
    /// under it sees exactly the frames appended so far.
    append: Mutex<Appender>,
    /// The newest frame written to the file (not necessarily synced).
    appended: AtomicU64,
    /// The newest fsynced frame; replicas long-poll on it.
    durable: watch::Sender<u64>,
    /// The newest fsynced frame, as `durable` has it, readable without a
    /// lock; changed only under `syncing`'s.
    synced_upto: AtomicU64,
    /// Group commit: whether an fsync is under way. One at a time; its
    /// waiters are woken together by `synced`.
    syncing: Mutex<bool>,
    synced: Condvar,
    /// The newest frame the backup archiver has uploaded, or `NO_HOLD`
    /// without an archiver: compaction keeps the frames after it.
    archived: AtomicU64,
    /// At most this many unarchived frames are kept past a compaction.
    archive_hold_limit: AtomicU64,
    /// A newer epoch heard of (0: none): from then on no commit is taken.
    fenced_by: AtomicU64,
    /// Set by a switchover: new write transactions are refused while the
    /// running ones finish, before the log is fenced.
    closed_to_writers: AtomicBool,
    /// How far replicas hold the log, for synchronous commits.
    replicas: SyncReplicas,
    /// `--fence-after`: who last reached this primary, and how long it may
    /// go without (`Isolation`).
    isolation: Isolation,
    metrics: Arc<Metrics>,
}

/// `archived` when no archiver holds frames back.
const NO_HOLD: u64 = u64::MAX;

struct Appender {
    file: File,
    /// frame_no of the first record in the file.
    first_frame_no: u64,
    /// The newest frame that ends a logged transaction (equals `appended`).
    last_commit: u64,
    /// The newest frame written to the file, past `last_commit` while a
    /// commit is between its log write and its WAL write.
    written: u64,
    /// The file's length: records, then zeros written ahead of them.
    allocated: u64,
}

impl Appender {
    /// Where the record of `frame_no` starts in the file.
    fn offset(&self, frame_no: u64) -> u64 {
        (frame_no - self.first_frame_no) * RECORD_SIZE as u64
    }

    /// Makes room for `len` more bytes after frame `after`. The file grows
    /// by zeroed chunks, synced once each: a record written over zeros
    /// does not change the file's size, so the fdatasync of a commit
    /// flushes data only, without a file-system journal commit for the
    /// new size (nearly halving its cost on common file systems).
    fn reserve(&mut self, after: u64, len: u64, path: &Path) -> Result<(), LogError> {
        let needed = self.offset(after + 1) + len;
        if needed <= self.allocated {
            return Ok(());
        }
        let grow_to = needed.max(self.allocated + PREALLOCATE_BYTES);
        write_zeros(&self.file, self.allocated, grow_to)
            .and_then(|_| self.file.sync_all())
            .map_err(io(path))?;
        self.allocated = grow_to;
        Ok(())
    }
}

/// Zeros written from one static block: a heap buffer the size of a
/// preallocation chunk would raise glibc's mmap threshold and then stay
/// resident in the allocating thread's arena after it is freed.
fn write_zeros(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    let mut at = from;
    while at < to {
        let len = (to - at).min(ZEROS.len() as u64) as usize;
        file.write_all_at(&ZEROS[..len], at)?;
        at += len as u64;
    }
    Ok(())
}

const META_FILE: &str = "log.json";
const FRAMES_FILE: &str = "frames.log";
const SNAPSHOT_FILE: &str = "snapshot.db";
/// The frames file grows by this much at a time, zero-filled ahead of use.
const PREALLOCATE_BYTES: u64 = 16 << 20;

impl ReplicationLog {
    /// Opens the log in `dir`: continues it after a clean stop; after a
    /// crash keeps its intact transactions and asks for them to be replayed
    /// (`LogStart::Recovered`); with no log yet, starts a new one from
    /// `db_file` as it is.
    pub fn open(
        dir: &Path,
        db_file: &Path,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, LogStart), LogError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let meta_path = dir.join(META_FILE);
        let frames_path = dir.join(FRAMES_FILE);
        let previous = read_meta(&meta_path)?;
        let (meta, start, last) = match previous {
            Some(meta) if dir.join(SNAPSHOT_FILE).exists() => {
                // The file is preallocated with zeros past its last record,
                // so its length says nothing: the records say where it ends.
                let records = intact_records(&frames_path, meta.first_frame_no() - 1)?;
                let start = if meta.clean_shutdown {
                    LogStart::Continued
                } else {
                    LogStart::Recovered
                };
                let last = meta.first_frame_no() - 1 + records;
                (meta, start, last)
            }
            _ => {
                let meta = Meta {
                    log_id: uuid::Uuid::new_v4().to_string(),
                    snapshot_frame_no: 0,
                    clean_shutdown: false,
                    frames_from: None,
                    epoch: FIRST_EPOCH,
                    history: Vec::new(),
                };
                copy_database(db_file, &dir.join(SNAPSHOT_FILE))?;
                let _ = std::fs::remove_file(&frames_path);
                (meta, LogStart::New, 0)
            }
        };
        let first_frame_no = meta.first_frame_no();
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&frames_path)
            .map_err(io(&frames_path))?;
        // Drop a torn record left by a crash mid-append, and the zeros
        // after the last record (appends preallocate again).
        let whole = (last + 1 - first_frame_no) * RECORD_SIZE as u64;
        file.set_len(whole).map_err(io(&frames_path))?;
        let running = Meta {
            clean_shutdown: false,
            ..meta
        };
        write_meta(&meta_path, &running)?;
        let (durable, _) = watch::channel(last);
        let log = ReplicationLog {
            dir: dir.to_owned(),
            meta: RwLock::new(running),
            append: Mutex::new(Appender {
                file,
                first_frame_no,
                last_commit: last,
                written: last,
                allocated: whole,
            }),
            appended: AtomicU64::new(last),
            durable,
            synced_upto: AtomicU64::new(last),
            syncing: Mutex::new(false),
            synced: Condvar::new(),
            archived: AtomicU64::new(NO_HOLD),
            archive_hold_limit: AtomicU64::new(0),
            fenced_by: AtomicU64::new(0),
            closed_to_writers: AtomicBool::new(false),
            replicas: SyncReplicas::default(),
            isolation: Isolation::default(),
            metrics,
        };
        Ok((log, start))
    }

    /// Taken by a committing connection around its WAL write and append.
    pub fn lock_appends(&self) -> AppendGuard<'_> {
        AppendGuard {
            log: self,
            appender: self.append.lock().expect("append lock poisoned"),
        }
    }

    /// Makes every frame appended so far durable. Concurrent callers share
    /// fsyncs: one caller syncs for everybody appended before it started,
    /// and all it covered return as soon as it is done (not one by one).
    /// Anyone left over starts the next fsync.
    pub fn sync(&self) -> Result<(), LogError> {
        let target = self.appended.load(Ordering::SeqCst);
        // Reads and commits already covered take no lock.
        if self.synced_upto.load(Ordering::SeqCst) >= target {
            return Ok(());
        }
        let mut syncing = self.syncing.lock().expect("sync lock poisoned");
        loop {
            if self.synced_upto.load(Ordering::SeqCst) >= target {
                return Ok(());
            }
            if *syncing {
                syncing = self.synced.wait(syncing).expect("sync lock poisoned");
                continue;
            }
            *syncing = true;
            drop(syncing);
            // Everything appended before this point is in the file.
            let upto = self.appended.load(Ordering::SeqCst);
            let synced = self.sync_file();
            syncing = self.syncing.lock().expect("sync lock poisoned");
            *syncing = false;
            if synced.is_ok() && upto > self.synced_upto.load(Ordering::SeqCst) {
                self.synced_upto.store(upto, Ordering::SeqCst);
                self.durable.send_replace(upto);
            }
            self.synced.notify_all();
            synced?;
        }
    }

    fn sync_file(&self) -> Result<(), LogError> {
        let file = {
            let appender = self.append.lock().expect("append lock poisoned");
            appender.file.try_clone()
        };
        let path = self.dir.join(FRAMES_FILE);
        file.and_then(|f| f.sync_data()).map_err(io(&path))
    }

    /// The newest frame appended (logged, not necessarily durable yet).
    /// The server's metrics, which the log records into (and the archiver
    /// of this log too).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn appended_frame_no(&self) -> u64 {
        self.appended.load(Ordering::SeqCst)
    }

    pub fn info(&self) -> LogInfo {
        let meta = self.meta.read().expect("meta lock poisoned");
        LogInfo {
            log_id: meta.log_id.clone(),
            current_frame_no: *self.durable.borrow(),
            snapshot_frame_no: meta.snapshot_frame_no,
            epoch: meta.epoch,
            history: meta.history.clone(),
            oldest_frame_no: meta.first_frame_no(),
        }
    }

    pub fn epoch(&self) -> u64 {
        self.meta.read().expect("meta lock poisoned").epoch
    }

    /// Hears of `epoch`: if it is newer than this log's, another server was
    /// promoted, and this one takes no commit from now on (nothing it
    /// acknowledged after the promotion would survive).
    pub fn fence_if_newer(&self, epoch: u64) {
        if epoch > self.epoch() && self.fenced_by.fetch_max(epoch, Ordering::SeqCst) == 0 {
            tracing::warn!(
                epoch,
                "a newer primary exists: this server takes no more writes"
            );
        }
    }

    /// Why no commit is taken now, a transaction already running included.
    pub fn refuses_commits(&self) -> Option<WriteRefusal> {
        if let Some(silent) = self.isolation.isolated() {
            return Some(WriteRefusal::Isolated(silent));
        }
        self.fenced_by().map(WriteRefusal::Fenced)
    }

    /// Why no new write transaction is taken now: as for commits, or a
    /// switchover under way (the running transaction may still commit).
    pub fn refuses_writers(&self) -> Option<WriteRefusal> {
        self.refuses_commits().or(self
            .closed_to_writers
            .load(Ordering::SeqCst)
            .then_some(WriteRefusal::HandingOver))
    }

    /// Refuses new write transactions from now on (a switchover began).
    pub fn close_to_writers(&self) {
        self.closed_to_writers.store(true, Ordering::SeqCst);
    }

    /// Takes write transactions again (a switchover was called off).
    pub fn reopen_to_writers(&self) {
        self.closed_to_writers.store(false, Ordering::SeqCst);
    }

    /// `--fence-after`: refuse commits once no replica and no orchestrator
    /// has reached this primary for `after` (None: never).
    pub fn fence_after(&self, after: Option<std::time::Duration>) {
        let ms = after.map_or(0, |d| d.as_millis().max(1) as u64);
        self.isolation.after_ms.store(ms, Ordering::SeqCst);
    }

    /// A replica or an orchestrator reached this primary; `pending` while
    /// a long-poll of a replica waits (one is counted as contact).
    pub fn contact(&self, pending: i64) {
        self.isolation.contact(pending);
    }

    /// Replicas' acknowledgements, which synchronous commits wait for.
    pub fn sync_replicas(&self) -> &SyncReplicas {
        &self.replicas
    }

    /// The newer epoch that fenced this log, if one did.
    pub fn fenced_by(&self) -> Option<u64> {
        Some(self.fenced_by.load(Ordering::SeqCst)).filter(|e| *e != 0)
    }

    /// The newest durable frame_no.
    pub fn durable_frame_no(&self) -> u64 {
        *self.durable.borrow()
    }

    /// Watches the newest durable frame_no.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.durable.subscribe()
    }

    /// Durable frames after `after`, at most about `max_frames` of them but
    /// always ending on a commit frame.
    pub fn frames_after(&self, after: u64, max_frames: usize) -> Result<FramesAfter, LogError> {
        let durable = *self.durable.borrow();
        let (file, first) = {
            let appender = self.append.lock().expect("append lock poisoned");
            (appender.file.try_clone(), appender.first_frame_no)
        };
        if after + 1 < first {
            return Ok(FramesAfter::SnapshotNeeded);
        }
        if after >= durable {
            return Ok(FramesAfter::UpToDate);
        }
        let path = self.dir.join(FRAMES_FILE);
        let file = file.map_err(io(&path))?;
        let mut out = BytesMut::new();
        let mut record = vec![0u8; RECORD_SIZE];
        let mut frame_no = after + 1;
        while frame_no <= durable {
            let offset = (frame_no - first) * RECORD_SIZE as u64;
            file.read_exact_at(&mut record, offset).map_err(io(&path))?;
            let mut bytes = Bytes::copy_from_slice(&record);
            let frame = Frame::decode(&mut bytes).map_err(|e| LogError::Meta {
                path: path.clone(),
                message: e.to_string(),
            })?;
            frame.encode(&mut out);
            frame_no += 1;
            if frame.is_commit() && out.len() / RECORD_SIZE >= max_frames {
                break;
            }
        }
        Ok(FramesAfter::Frames(out.freeze()))
    }

    /// The snapshot file, to stream to a bootstrapping replica, with the
    /// frame_no it stands for.
    pub fn snapshot(&self) -> (PathBuf, u64) {
        let meta = self.meta.read().expect("meta lock poisoned");
        (self.dir.join(SNAPSHOT_FILE), meta.snapshot_frame_no)
    }

    /// The snapshot file opened, with the frame_no it stands for: opened
    /// under the append lock, which `install_snapshot` holds while it
    /// replaces the file, so the two always match.
    pub fn open_snapshot(&self) -> Result<(File, u64), LogError> {
        let _appender = self.append.lock().expect("append lock poisoned");
        let (path, frame_no) = self.snapshot();
        let file = File::open(&path).map_err(io(&path))?;
        Ok((file, frame_no))
    }

    /// Number of frames logged after the snapshot.
    pub fn frames_since_snapshot(&self) -> u64 {
        let appender = self.append.lock().expect("append lock poisoned");
        let snapshot = self
            .meta
            .read()
            .expect("meta lock poisoned")
            .snapshot_frame_no;
        appender.last_commit - snapshot
    }

    /// From now on compaction keeps frames after `archived` (the backup
    /// archiver's progress, updated with `set_archived`), at most `limit`
    /// of them.
    pub fn hold_for_archive(&self, archived: u64, limit: u64) {
        self.archive_hold_limit.store(limit, Ordering::SeqCst);
        self.archived.store(archived, Ordering::SeqCst);
    }

    /// The archiver uploaded every frame up to `frame_no`.
    pub fn set_archived(&self, frame_no: u64) {
        self.archived.store(frame_no, Ordering::SeqCst);
    }

    /// The first frame a compaction to `snapshot_frame_no` must keep, of
    /// a file that starts at `first_frame_no`.
    fn keep_from(&self, snapshot_frame_no: u64, first_frame_no: u64) -> u64 {
        let after_snapshot = snapshot_frame_no + 1;
        let archived = self.archived.load(Ordering::SeqCst);
        if archived == NO_HOLD {
            return after_snapshot;
        }
        let from = (archived + 1).max(first_frame_no);
        if from >= after_snapshot {
            return after_snapshot;
        }
        let unarchived = after_snapshot - from;
        let limit = self.archive_hold_limit.load(Ordering::SeqCst);
        if unarchived > limit {
            // Past the bound the disk matters more than the backup: the
            // archiver starts a new generation from the snapshot.
            tracing::error!(
                archived,
                snapshot_frame_no,
                limit,
                "backup archiving is too far behind: dropping unarchived frames from the local log; \
                 the backup will have a gap until the next snapshot is uploaded"
            );
            self.metrics.unarchived_frames_dropped.inc_by(unarchived);
            return after_snapshot;
        }
        from
    }

    /// Folds the log into a new snapshot: `write_snapshot` must write the
    /// database as of the returned frame_no to the given path. It is
    /// called with appends blocked only long enough to pin that state (see
    /// `Database::compact`). Frames up to the snapshot leave the file.
    pub fn install_snapshot(
        &self,
        snapshot_tmp: &Path,
        snapshot_frame_no: u64,
    ) -> Result<(), LogError> {
        let snapshot_path = self.dir.join(SNAPSHOT_FILE);
        let frames_path = self.dir.join(FRAMES_FILE);
        let tmp_frames = self.dir.join("frames.log.tmp");
        self.sync()?;
        let mut appender = self.append.lock().expect("append lock poisoned");
        // Copy the frames after the snapshot (and those the archiver has
        // yet to upload) into a new file.
        let keep_from = self.keep_from(snapshot_frame_no, appender.first_frame_no);
        let skip = appender.offset(keep_from);
        let end = appender.offset(appender.last_commit + 1);
        let mut tail = vec![0u8; (end - skip) as usize];
        appender
            .file
            .read_exact_at(&mut tail, skip)
            .map_err(io(&frames_path))?;
        let mut new = File::create(&tmp_frames).map_err(io(&tmp_frames))?;
        new.write_all(&tail).map_err(io(&tmp_frames))?;
        new.sync_all().map_err(io(&tmp_frames))?;
        std::fs::rename(snapshot_tmp, &snapshot_path).map_err(io(&snapshot_path))?;
        {
            let mut meta = self.meta.write().expect("meta lock poisoned");
            meta.snapshot_frame_no = snapshot_frame_no;
            meta.frames_from = (keep_from != snapshot_frame_no + 1).then_some(keep_from);
            write_meta(&self.dir.join(META_FILE), &meta)?;
        }
        std::fs::rename(&tmp_frames, &frames_path).map_err(io(&frames_path))?;
        sync_dir(&self.dir)?;
        appender.file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&frames_path)
            .map_err(io(&frames_path))?;
        appender.first_frame_no = keep_from;
        appender.allocated = tail.len() as u64;
        self.metrics.snapshots.inc();
        Ok(())
    }

    /// Records a clean stop, so the next start continues this log.
    pub fn close_cleanly(&self) -> Result<(), LogError> {
        self.sync()?;
        let mut meta = self.meta.write().expect("meta lock poisoned");
        meta.clean_shutdown = true;
        write_meta(&self.dir.join(META_FILE), &meta)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Exclusive access to the end of the log for one commit.
pub struct AppendGuard<'a> {
    log: &'a ReplicationLog,
    appender: MutexGuard<'a, Appender>,
}

impl AppendGuard<'_> {
    /// Writes one transaction's pages to the end of the file; the last one
    /// carries `size_after`. It counts as logged (synced, served, kept by a
    /// clean stop) only once `publish` is called, after SQLite took it.
    pub fn write_transaction(
        &mut self,
        pages: &[(u32, Bytes)],
        size_after: u32,
    ) -> Result<(), LogError> {
        if let Some(refusal) = self.log.refuses_commits() {
            return Err(LogError::Refused(refusal));
        }
        let mut buf = BytesMut::with_capacity(pages.len() * RECORD_SIZE);
        let mut frame_no = self.appender.last_commit;
        for (i, (page_no, page)) in pages.iter().enumerate() {
            frame_no += 1;
            Frame {
                frame_no,
                page_no: *page_no,
                size_after: if i + 1 == pages.len() { size_after } else { 0 },
                page: page.clone(),
            }
            .encode(&mut buf);
        }
        let path = self.log.dir.join(FRAMES_FILE);
        let last = self.appender.last_commit;
        self.appender.reserve(last, buf.len() as u64, &path)?;
        let at = self.appender.offset(last + 1);
        self.appender
            .file
            .write_all_at(&buf, at)
            .map_err(io(&path))?;
        self.appender.written = frame_no;
        self.log.metrics.frames_logged.inc_by(pages.len() as u64);
        self.log.metrics.log_bytes.inc_by(buf.len() as u64);
        Ok(())
    }

    /// Makes the transaction written last part of the log.
    pub fn publish(&mut self) {
        self.appender.last_commit = self.appender.written;
        self.log
            .appended
            .store(self.appender.last_commit, Ordering::SeqCst);
    }

    /// Takes back a transaction SQLite did not commit (or a partial write):
    /// its records are zeroed, so recovery never mistakes them for part of
    /// the log.
    pub fn discard(&mut self) {
        let appender = &mut *self.appender;
        let from = appender.offset(appender.last_commit + 1);
        let to = appender
            .offset(appender.written + 1)
            .min(appender.allocated);
        if to > from {
            if let Err(e) = write_zeros(&appender.file, from, to) {
                tracing::error!(error = %e, "cannot take back an unlogged transaction");
            }
        }
        appender.written = appender.last_commit;
    }

    /// The newest logged frame: the state a snapshot taken now reflects.
    pub fn last_frame_no(&self) -> u64 {
        self.appender.last_commit
    }
}

/// An isolated primary refuses writes by itself: a partition may put a
/// failover on the other side, which would discard what it acknowledged.
/// Contact is a replica's request (a long-poll that is waiting counts all
/// along) or an admin call; with writes going on, replicas' long-polls end
/// at each commit, so a primary that no replica reaches any more stops
/// taking commits about `after` after the last one did.
#[derive(Default)]
struct Isolation {
    /// 0: off.
    after_ms: AtomicU64,
    last_ms: AtomicU64,
    pending: std::sync::atomic::AtomicI64,
    since: std::sync::OnceLock<std::time::Instant>,
}

impl Isolation {
    fn now_ms(&self) -> u64 {
        self.since
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_millis() as u64
    }

    fn contact(&self, pending: i64) {
        self.last_ms.store(self.now_ms(), Ordering::SeqCst);
        self.pending.fetch_add(pending, Ordering::SeqCst);
    }

    fn isolated(&self) -> Option<std::time::Duration> {
        let after = self.after_ms.load(Ordering::SeqCst);
        if after == 0 || self.pending.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let silent = self
            .now_ms()
            .saturating_sub(self.last_ms.load(Ordering::SeqCst));
        (silent > after).then(|| std::time::Duration::from_millis(silent))
    }
}

/// What a promoted replica brings to the log it starts: the log it
/// followed, how far it applied it, and the frames it kept.
pub struct Promotion<'a> {
    pub log_id: &'a str,
    /// The epoch it followed, and that epoch's history.
    pub epoch: u64,
    pub history: &'a [EpochStart],
    /// The last frame it applied: the database holds exactly up to it.
    pub applied: u64,
    /// Encoded records of the frames it kept, contiguous, the last of them
    /// `applied` (empty when it kept none), and the first one's frame_no
    /// (`applied + 1` when empty).
    pub retained: &'a [u8],
    pub retained_from: u64,
}

/// Writes the log of a promoted replica into `dir`, as a clean stop would
/// leave it: the same log id, epoch + 1 beginning after `applied` (noted in
/// the history), a snapshot of `db_file` (which nobody is writing) as of
/// `applied`, and the retained frames, so replicas that stopped before
/// `applied` can catch up without a bootstrap. Returns the new epoch.
pub fn write_promoted(dir: &Path, db_file: &Path, from: &Promotion<'_>) -> Result<u64, LogError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    copy_database(db_file, &dir.join(SNAPSHOT_FILE))?;
    let frames_path = dir.join(FRAMES_FILE);
    let mut frames = File::create(&frames_path).map_err(io(&frames_path))?;
    frames.write_all(from.retained).map_err(io(&frames_path))?;
    frames.sync_all().map_err(io(&frames_path))?;
    let epoch = from.epoch + 1;
    let mut history = from.history.to_vec();
    history.push(EpochStart {
        epoch,
        first_frame_no: from.applied + 1,
    });
    let meta = Meta {
        log_id: from.log_id.to_owned(),
        snapshot_frame_no: from.applied,
        clean_shutdown: true,
        frames_from: (from.retained_from <= from.applied).then_some(from.retained_from),
        epoch,
        history,
    };
    write_meta(&dir.join(META_FILE), &meta)?;
    Ok(epoch)
}

/// Where a log that stopped cleanly ends: what a former primary's
/// directory needs to follow a new primary without a bootstrap (when the
/// new epoch began after `last_frame_no`).
pub struct CleanEnd {
    pub log_id: String,
    pub epoch: u64,
    pub history: Vec<EpochStart>,
    pub last_frame_no: u64,
}

/// The end of the log in `dir` if it stopped cleanly (the database then
/// holds exactly its frames); `None` after a crash or without a log.
pub fn clean_end(dir: &Path) -> Result<Option<CleanEnd>, LogError> {
    let Some(meta) = read_meta(&dir.join(META_FILE))? else {
        return Ok(None);
    };
    if !meta.clean_shutdown {
        return Ok(None);
    }
    let first = meta.first_frame_no();
    let records = intact_records(&dir.join(FRAMES_FILE), first - 1)?;
    Ok(Some(CleanEnd {
        last_frame_no: first - 1 + records,
        log_id: meta.log_id,
        epoch: meta.epoch,
        history: meta.history,
    }))
}

/// The number of records at the front of `path` that form whole, intact
/// transactions numbered from `snapshot_frame_no + 1`: what a crash left
/// after the last commit frame (a torn record, a transaction cut short) is
/// not part of the log.
fn intact_records(path: &Path, snapshot_frame_no: u64) -> Result<u64, LogError> {
    let mut file = match File::open(path) {
        Ok(f) => std::io::BufReader::with_capacity(64 * RECORD_SIZE, f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(path)(e)),
    };
    let mut record = vec![0u8; RECORD_SIZE];
    let (mut read, mut committed) = (0u64, 0u64);
    loop {
        match file.read_exact(&mut record) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(io(path)(e)),
        }
        let Ok(frame) = Frame::decode(&mut Bytes::copy_from_slice(&record)) else {
            break;
        };
        if frame.frame_no != snapshot_frame_no + read + 1 {
            break;
        }
        read += 1;
        if frame.is_commit() {
            committed = read;
        }
    }
    if committed < read {
        tracing::warn!(
            dropped = read - committed,
            "the replication log ends in a transaction cut short by a crash; dropping it"
        );
    }
    Ok(committed)
}

fn read_meta(path: &Path) -> Result<Option<Meta>, LogError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LogError::Meta {
                path: path.to_owned(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

fn write_meta(path: &Path, meta: &Meta) -> Result<(), LogError> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(meta).expect("metadata serializes");
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(&bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Copies a database that nobody is writing (at startup) with the backup
/// API, so a WAL beside it is included.
fn copy_database(db_file: &Path, to: &Path) -> Result<(), LogError> {
    use libsql_sys::rusqlite::{Connection, OpenFlags};
    let src = Connection::open_with_flags(
        db_file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )
    .map_err(|e| SnapshotError(e.to_string()))?;
    Ok(super::snapshot::backup(&src, to)?)
}
