//! The primary's background uploader: ships the replication log's durable
//! frames to the backup store as segments, at least every
//! `--backup-interval` or whenever `--backup-segment-size` bytes are
//! waiting, and a snapshot at the start of each generation.
//!
//! It never touches the commit path: it reads what the log already made
//! durable, so a slow or absent store makes archiving lag (see the
//! `sqld_backup_*` metrics), never commits. Until frames are archived the
//! log keeps them through compaction (`ReplicationLog::hold_for_archive`),
//! up to a bound. On start it resumes after the newest frame the store
//! holds for this log id, so a restart (even after `kill -9`) uploads
//! neither a gap nor a duplicate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::naming::{SegmentName, SnapshotName};
use super::retention;
use super::segment::{self, Commit};
use super::store::BackupStore;
use super::timeline::{now_ms, Timeline};
use super::BackupError;
use crate::metrics::Metrics;
use crate::replication::frame::{Frame, RECORD_SIZE};
use crate::replication::log::{FramesAfter, ReplicationLog};
use crate::shutdown::Shutdown;

#[derive(Debug, Clone)]
pub struct ArchiverConfig {
    /// Upload what is waiting at least this often.
    pub interval: Duration,
    /// Upload as soon as this many bytes of frames wait.
    pub segment_bytes: u64,
    /// Start a new generation (upload a snapshot) after this many frames.
    pub generation_frames: u64,
    /// Delete generations no longer needed to restore this far back.
    pub retention: Option<Duration>,
    /// Unarchived frames the local log keeps through compaction.
    pub max_local_frames: u64,
}

/// First and longest wait between attempts at a failed upload.
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often an idle archiver checks whether a new generation is due.
const MAINTAIN_INTERVAL: Duration = Duration::from_secs(1);
/// How often retention runs (besides after each new generation).
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);
/// On shutdown, how long the last upload may take.
pub const FINAL_UPLOAD_GRACE: Duration = Duration::from_secs(10);

pub struct Archiver {
    store: BackupStore,
    log: Arc<ReplicationLog>,
    log_id: String,
    config: ArchiverConfig,
    timeline: Arc<Timeline>,
    /// The newest frame the store holds for this log id.
    archived: u64,
    /// The same, for the lag reporter.
    shared_archived: Arc<AtomicU64>,
    /// The frame of the newest snapshot the store holds for this log id.
    last_snapshot: Option<u64>,
    last_upload: Instant,
    last_retention: Instant,
    metrics: Arc<Metrics>,
}

/// Starts archiving `log` to `store` in the background; the task ends
/// after a last upload once `shutdown` fires.
pub fn spawn(
    store: BackupStore,
    log: Arc<ReplicationLog>,
    config: ArchiverConfig,
    shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    let info = log.info();
    // Hold every frame the log has, until the store says what it holds.
    log.hold_for_archive(0, config.max_local_frames);
    let timeline = Arc::new(Timeline::default());
    timeline.record(info.current_frame_no, now_ms());
    let shared_archived = Arc::new(AtomicU64::new(0));
    let metrics = log.metrics().clone();
    tokio::spawn(watch_commits(
        log.subscribe(),
        timeline.clone(),
        shared_archived.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    let archiver = Archiver {
        shared_archived,
        store,
        log,
        log_id: super::naming::log_name(&info.log_id, info.epoch),
        config,
        timeline,
        archived: 0,
        last_snapshot: None,
        last_upload: Instant::now(),
        last_retention: Instant::now(),
        metrics,
    };
    tokio::spawn(archiver.run(shutdown))
}

/// How often the lag metrics are refreshed without new commits.
const LAG_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Dates every durable frame_no as it appears, and keeps the lag metrics
/// current (also while an upload is being retried).
async fn watch_commits(
    mut durable: watch::Receiver<u64>,
    timeline: Arc<Timeline>,
    archived: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            changed = durable.changed() => {
                if changed.is_err() {
                    return;
                }
                let frame_no = *durable.borrow_and_update();
                timeline.record(frame_no, now_ms());
            }
            _ = tokio::time::sleep(LAG_REPORT_INTERVAL) => {}
            _ = shutdown.recv() => return,
        }
        report_lag(
            &metrics,
            &timeline,
            *durable.borrow(),
            archived.load(Ordering::SeqCst),
        );
    }
}

fn report_lag(metrics: &Metrics, timeline: &Timeline, head: u64, archived: u64) {
    let behind = head.saturating_sub(archived);
    metrics.backup_lag_frames.set(behind as i64);
    let seconds = match behind {
        0 => 0.0,
        _ => timeline
            .time_of(archived + 1)
            .map_or(0.0, |t| now_ms().saturating_sub(t) as f64 / 1000.0),
    };
    metrics.backup_lag_seconds.set(seconds);
}

impl Archiver {
    async fn run(mut self, mut shutdown: Shutdown) {
        let mut durable = self.log.subscribe();
        if !self.resume(&mut shutdown).await {
            return;
        }
        let segment_frames = (self.config.segment_bytes / RECORD_SIZE as u64).max(1);
        loop {
            let head = *durable.borrow_and_update();
            self.report_lag(head);
            let stopping = shutdown.is_shutdown();
            if head > self.archived {
                let since = self.last_upload.elapsed();
                if stopping
                    || since >= self.config.interval
                    || head - self.archived >= segment_frames
                {
                    if !self
                        .archive_next(segment_frames as usize, &mut shutdown)
                        .await
                    {
                        return;
                    }
                    // Under steady writes the archiver is never idle:
                    // generations and retention happen between uploads.
                    if !stopping && !self.maintain(&mut shutdown).await {
                        return;
                    }
                    continue;
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.config.interval - since) => {}
                    _ = durable.changed() => {}
                    _ = shutdown.recv() => {}
                }
                continue;
            }
            if stopping {
                return;
            }
            if !self.maintain(&mut shutdown).await {
                return;
            }
            tokio::select! {
                _ = durable.changed() => {}
                _ = tokio::time::sleep(MAINTAIN_INTERVAL) => {}
                _ = shutdown.recv() => {}
            }
        }
    }

    /// Finds where the store stands for this log id; uploads the first
    /// snapshot when it has none. False if shut down first.
    async fn resume(&mut self, shutdown: &mut Shutdown) -> bool {
        let store = self.store.clone();
        let Some(names) = retry(&self.metrics, "list the backup store", shutdown, || {
            store.list()
        })
        .await
        else {
            return false;
        };
        let inventory = super::inventory::Inventory::new(names);
        if let Some(log) = inventory.log(&self.log_id) {
            self.archived = log.last_frame_no().unwrap_or(0);
            self.last_snapshot = log.snapshots.last().map(|s| s.frame_no);
        }
        if self.last_snapshot.is_none() {
            self.archived = 0;
            if !self.upload_snapshot(shutdown).await {
                return false;
            }
        }
        self.log.set_archived(self.archived);
        self.shared_archived.store(self.archived, Ordering::SeqCst);
        self.metrics
            .backup_archived_frame_no
            .set(self.archived as i64);
        tracing::info!(
            store = self.store.url(),
            log_id = %self.log_id,
            archived = self.archived,
            "backup archiving started"
        );
        true
    }

    /// Uploads the next segment (or, if the log no longer has the frames
    /// after `archived`, a snapshot that starts a new generation).
    async fn archive_next(&mut self, max_frames: usize, shutdown: &mut Shutdown) -> bool {
        let batch = match self.log.frames_after(self.archived, max_frames) {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(error = %e, "backup archiving cannot read the replication log");
                self.metrics.backup_upload_errors.inc();
                tokio::time::sleep(BACKOFF_MAX).await;
                return true;
            }
        };
        match batch {
            FramesAfter::UpToDate => true,
            FramesAfter::SnapshotNeeded => {
                tracing::error!(
                    archived = self.archived,
                    "frames after the last archived one are no longer in the local log; \
                     the backup has a gap there and starts a new generation"
                );
                self.upload_snapshot(shutdown).await
            }
            FramesAfter::Frames(records) => self.upload_segment(records, shutdown).await,
        }
    }

    async fn upload_segment(&mut self, records: bytes::Bytes, shutdown: &mut Shutdown) -> bool {
        let frames = match Frame::decode_all(records.clone()) {
            Ok(frames) => frames,
            Err(e) => {
                tracing::error!(error = %e, "the replication log returned a corrupt frame; not archiving it");
                self.metrics.backup_upload_errors.inc();
                tokio::time::sleep(BACKOFF_MAX).await;
                return true;
            }
        };
        let (Some(first), Some(last)) = (frames.first(), frames.last()) else {
            return true;
        };
        let now = now_ms();
        let commits: Vec<Commit> = frames
            .iter()
            .filter(|f| f.is_commit())
            .map(|f| Commit {
                frame_no: f.frame_no,
                time_ms: self.timeline.time_of(f.frame_no).unwrap_or(now),
            })
            .collect();
        let name = SegmentName {
            log_id: self.log_id.clone(),
            first_frame_no: first.frame_no,
            last_frame_no: last.frame_no,
            first_time_ms: commits.first().map_or(now, |c| c.time_ms),
            last_time_ms: commits.last().map_or(now, |c| c.time_ms),
        };
        let body =
            match tokio::task::spawn_blocking(move || segment::encode(&commits, &records)).await {
                Ok(body) => body,
                Err(e) => {
                    tracing::error!(error = %e, "compressing a backup segment panicked");
                    return true;
                }
            };
        let len = body.len() as u64;
        let key = name.key();
        let store = self.store.clone();
        if retry(&self.metrics, "upload a backup segment", shutdown, || {
            store.put(&key, body.clone())
        })
        .await
        .is_none()
        {
            return false;
        }
        self.metrics.backup_segments_uploaded.inc();
        self.uploaded(len, name.last_frame_no);
        true
    }

    /// Uploads the log's snapshot, which opens a generation.
    async fn upload_snapshot(&mut self, shutdown: &mut Shutdown) -> bool {
        let log = self.log.clone();
        let read = tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, u64), BackupError> {
            let (mut file, frame_no) = log.open_snapshot()?;
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut data).map_err(BackupError::Local)?;
            Ok((segment::compress(&data), frame_no))
        })
        .await;
        let (body, frame_no) = match read {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read the snapshot to back it up");
                self.metrics.backup_upload_errors.inc();
                return true;
            }
            Err(e) => {
                tracing::error!(error = %e, "reading the snapshot panicked");
                return true;
            }
        };
        // Dated no later than its last commit was seen durable (the first
        // one at start, before any session commits): a restore to a time
        // just after that commit can start from it.
        let now = now_ms();
        let name = SnapshotName {
            log_id: self.log_id.clone(),
            frame_no,
            time_ms: self.timeline.time_of(frame_no).unwrap_or(now).min(now),
        };
        let len = body.len() as u64;
        let key = name.key();
        let store = self.store.clone();
        if retry(&self.metrics, "upload a backup snapshot", shutdown, || {
            store.put(&key, body.clone())
        })
        .await
        .is_none()
        {
            return false;
        }
        self.metrics.backup_snapshots_uploaded.inc();
        tracing::info!(
            frame_no,
            bytes = len,
            "uploaded a snapshot: a new backup generation"
        );
        self.last_snapshot = Some(frame_no);
        self.uploaded(len, frame_no.max(self.archived));
        true
    }

    fn uploaded(&mut self, bytes: u64, archived: u64) {
        self.archived = archived;
        self.shared_archived.store(archived, Ordering::SeqCst);
        self.log.set_archived(archived);
        self.metrics.backup_archived_frame_no.set(archived as i64);
        self.timeline.forget_upto(archived);
        self.last_upload = Instant::now();
        self.metrics.backup_bytes_uploaded.inc_by(bytes);
        self.metrics
            .backup_last_upload_timestamp
            .set(now_ms() as f64 / 1000.0);
    }

    fn report_lag(&self, head: u64) {
        report_lag(&self.metrics, &self.timeline, head, self.archived);
    }

    /// When caught up: a new generation once enough frames have passed
    /// (from the log's own snapshot, if it is archived up to it), and
    /// retention now and then.
    async fn maintain(&mut self, shutdown: &mut Shutdown) -> bool {
        let (_, log_snapshot) = self.log.snapshot();
        let since = log_snapshot.saturating_sub(self.last_snapshot.unwrap_or(0));
        let mut new_generation = false;
        if since >= self.config.generation_frames && log_snapshot <= self.archived {
            if !self.upload_snapshot(shutdown).await {
                return false;
            }
            new_generation = true;
        }
        let Some(window) = self.config.retention else {
            return true;
        };
        if new_generation || self.last_retention.elapsed() >= RETENTION_INTERVAL {
            self.last_retention = Instant::now();
            if let Err(e) = retention::apply(&self.store, &self.log_id, window, &self.metrics).await
            {
                self.metrics.backup_upload_errors.inc();
                tracing::warn!(error = %e, "backup retention failed; retrying later");
            }
        }
        true
    }
}

/// Runs `attempt` until it succeeds, backing off between failures (each
/// counted and logged); `None` if shutdown comes first.
async fn retry<T, F, Fut>(
    metrics: &Metrics,
    what: &str,
    shutdown: &mut Shutdown,
    mut attempt: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, object_store::Error>>,
{
    let mut backoff = BACKOFF_FIRST;
    let mut failures = 0u32;
    loop {
        match attempt().await {
            Ok(v) => {
                if failures > 0 {
                    tracing::info!(failures, "backup store reachable again: {what} succeeded");
                }
                return Some(v);
            }
            Err(e) => {
                failures += 1;
                metrics.backup_upload_errors.inc();
                tracing::warn!(error = %e, detail = ?e, failures, lag_frames = metrics.backup_lag_frames.get(), "cannot {what}; retrying");
            }
        }
        if shutdown.is_shutdown() && failures >= 3 {
            tracing::warn!("shutting down with the backup behind; the next start resumes it");
            return None;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.recv(), if !shutdown.is_shutdown() => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
