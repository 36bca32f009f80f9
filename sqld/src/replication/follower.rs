//! The replica's follower: where frames are fetched and injected.
//!
//! A replica bootstraps from the primary's snapshot, then long-polls for
//! frames after the last one it applied and injects them into its own WAL
//! with libsql's WAL insert API, one whole transaction at a time, so a
//! reader never sees half a transaction. Every frame's checksum is verified
//! first. The applied `frame_no` and the primary's log id are persisted
//! after each batch, so a restart resumes where it stopped; a new log id on
//! the primary (or frames folded into a newer snapshot) means a clean
//! re-bootstrap. Bootstrapping injects the snapshot's pages as one
//! transaction too, so even a re-bootstrap under live readers is atomic.
//! With `--bootstrap-from-backup`, a replica's first bootstrap restores the
//! primary's backup instead (`backup::seed`), when it continues the
//! primary's log, and loads it the same way.
//! A batch that fails part-way keeps the transactions it committed, and the
//! next request starts after them: injecting a transaction twice would put
//! its old pages back over newer ones under the readers' feet.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::epoch::{first_epoch, rejoin, EpochStart, Rejoin, FIRST_EPOCH};
use super::frame::{Frame, PAGE_SIZE, RECORD_SIZE};
use super::inject::{
    checkpoint_if_large, inject, inject_transactions, snapshot_frames, InjectError,
};
use super::log::LogInfo;
use super::retained::RetainedFrames;
use super::status::{ReplicaStatus, LONG_POLL};
use super::wire::{
    CURRENT_FRAME_HEADER, EPOCH_HEADER, FRAMES_PATH, INFO_PATH, LOG_ID_HEADER, REPLICA_ID_HEADER,
    SNAPSHOT_FRAME_HEADER, SNAPSHOT_PATH,
};
use crate::backup::seed::{self, Fallback};
use crate::backup::store::BackupStore;
use crate::database::{Database, DbConnection};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// `replica.json` is written as one record of this size.
const STATE_RECORD_BYTES: usize = 512;
/// Retry delays after a failed request.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum FollowerError {
    #[error("request to the primary failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the primary answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("corrupt frame from the primary: {0}")]
    Frame(#[from] super::frame::FrameError),
    #[error("frames out of order: expected {expected}, got {got}")]
    Gap { expected: u64, got: u64 },
    #[error(transparent)]
    Apply(#[from] InjectError),
    #[error("replica state I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("database: {0}")]
    Database(#[from] crate::database::DatabaseError),
    #[error("the primary's log changed")]
    NewLog,
    #[error(
        "the primary is in epoch {primary}, older than this replica's {replica}: it was replaced"
    )]
    StalePrimary { primary: u64, replica: u64 },
}

/// What a replica records after every batch, in `replica.json`: the log it
/// follows, its epoch and history, and the last frame it applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub log_id: String,
    pub applied_frame_no: u64,
    #[serde(default = "first_epoch")]
    pub epoch: u64,
    #[serde(default)]
    pub history: Vec<EpochStart>,
}

impl Default for State {
    fn default() -> Self {
        State {
            log_id: String::new(),
            applied_frame_no: 0,
            epoch: FIRST_EPOCH,
            history: Vec::new(),
        }
    }
}

/// Records `state` in `db_dir` as a replica's, before any follower runs
/// there (a former primary's directory turning replica).
pub fn record_replica(db_dir: &Path, state: &State) -> std::io::Result<()> {
    let path = db_dir.join(STATE_FILE);
    std::fs::write(&path, serde_json::to_vec(state).expect("state serializes"))?;
    std::fs::File::open(&path)?.sync_all()?;
    std::fs::File::open(db_dir)?.sync_all()
}

/// The replica's record in `db_dir`.
pub const STATE_FILE: &str = "replica.json";

/// What the replica in `db_dir` last recorded, if it recorded anything.
pub fn saved_state(db_dir: &Path) -> Option<State> {
    std::fs::read(db_dir.join(STATE_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

pub struct Follower {
    http: reqwest::Client,
    primary: String,
    token: Option<String>,
    /// Names this process to the primary (`sqld_replicas_connected`).
    id: String,
    applier: Arc<std::sync::Mutex<Applier>>,
    /// Where a snapshot is downloaded before it is loaded.
    bootstrap_path: PathBuf,
    /// The store a first bootstrap restores from (`--bootstrap-from-backup`);
    /// taken by the first bootstrap, tried once.
    seed_store: Option<BackupStore>,
    /// Where that restore is built.
    seed_path: PathBuf,
    /// What was last recorded (the applier records it).
    state: State,
    /// The primary answered from another epoch: check its timeline before
    /// the next poll.
    check_timeline: bool,
    status: Arc<ReplicaStatus>,
    metrics: Arc<Metrics>,
}

impl Follower {
    pub fn new(
        http: reqwest::Client,
        primary_url: &str,
        token: Option<String>,
        db: Database,
        db_dir: &Path,
        seed_store: Option<BackupStore>,
        status: Arc<ReplicaStatus>,
    ) -> Result<Self, FollowerError> {
        let state = saved_state(db_dir).unwrap_or_default();
        let journal = Journal {
            file: std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(db_dir.join(STATE_FILE))?,
            retained: RetainedFrames::open(db_dir, state.applied_frame_no)?,
        };
        status.follows(&state.log_id, state.epoch);
        Ok(Follower {
            http,
            primary: primary_url.trim_end_matches('/').to_owned(),
            token,
            id: uuid::Uuid::new_v4().to_string(),
            metrics: db.metrics().clone(),
            applier: Arc::new(std::sync::Mutex::new(Applier::new(db, Some(journal)))),
            bootstrap_path: db_dir.join("bootstrap.db.tmp"),
            seed_store,
            seed_path: db_dir.join("bootstrap-from-backup"),
            state,
            check_timeline: false,
            status,
        })
    }

    /// Replicates until shutdown. Returns once no batch is being applied
    /// any more, so the database and `replica.json` agree and stay still.
    pub async fn run(mut self, mut shutdown: Shutdown) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let step = tokio::select! {
                _ = shutdown.recv() => break,
                step = self.step() => step,
            };
            match step {
                Ok(()) => backoff = MIN_BACKOFF,
                Err(e) => {
                    tracing::warn!(error = %e, "replication step failed; retrying");
                    tokio::select! {
                        _ = shutdown.recv() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        // A batch or snapshot being applied holds the applier until done.
        let applier = self.applier.clone();
        let _ = tokio::task::spawn_blocking(move || drop(lock(&applier))).await;
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.get(format!("{}{path}", self.primary));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    fn contact(&self) {
        self.status.contact();
    }

    /// One round: bootstrap if needed, else fetch and apply what is new.
    async fn step(&mut self) -> Result<(), FollowerError> {
        if !self.status.bootstrapped.load(Ordering::SeqCst) || self.check_timeline {
            let info: LogInfo = checked(
                self.get(&format!("{INFO_PATH}?epoch={}", self.state.epoch))
                    .send()
                    .await?,
            )
            .await?
            .json()
            .await?;
            self.contact();
            self.status
                .primary_frame_no
                .store(info.current_frame_no, Ordering::SeqCst);
            if info.log_id != self.state.log_id
                || self.state.applied_frame_no + 1 < info.first_frame_no()
            {
                return self.bootstrap().await;
            }
            let applied = self.state.applied_frame_no;
            match rejoin(self.state.epoch, applied, info.epoch, &info.history) {
                Rejoin::Follow => self.enter_epoch(&info).await?,
                Rejoin::StalePrimary => {
                    return Err(FollowerError::StalePrimary {
                        primary: info.epoch,
                        replica: self.state.epoch,
                    })
                }
                Rejoin::Diverged { first_divergent } => {
                    tracing::warn!(
                        applied,
                        first_divergent,
                        epoch = info.epoch,
                        "this replica applied frames the new primary never had; discarding them by bootstrapping again"
                    );
                    self.metrics.replication_divergent_rejoins.inc();
                    return self.bootstrap().await;
                }
            }
            // Resuming where a previous run stopped.
            self.check_timeline = false;
            self.mark_applied(applied);
            self.status.mark_bootstrapped();
        }
        let after = self.state.applied_frame_no;
        let response = self
            .get(&format!(
                "{FRAMES_PATH}?after={after}&wait_ms={}&log_id={}&epoch={}",
                LONG_POLL.as_millis(),
                self.state.log_id,
                self.state.epoch,
            ))
            .header(REPLICA_ID_HEADER, &self.id)
            .timeout(LONG_POLL + Duration::from_secs(10))
            .send()
            .await?;
        self.contact();
        let log_id = header(&response, LOG_ID_HEADER);
        if log_id.as_deref() != Some(self.state.log_id.as_str()) {
            tracing::info!("the primary started a new log; bootstrapping again");
            self.status.bootstrapped.store(false, Ordering::SeqCst);
            return Ok(());
        }
        let epoch = header(&response, EPOCH_HEADER).and_then(|v| v.parse::<u64>().ok());
        if epoch.unwrap_or(FIRST_EPOCH) != self.state.epoch {
            // Not its frames yet: first see whether this replica's history
            // is the new primary's (or the primary is an old one).
            self.check_timeline = true;
            return Ok(());
        }
        if let Some(current) = header(&response, CURRENT_FRAME_HEADER).and_then(|v| v.parse().ok())
        {
            self.status.primary_at(current);
        }
        match response.status().as_u16() {
            204 => {
                self.status.primary_at(after);
                Ok(())
            }
            409 => {
                tracing::info!(
                    "frames after {after} were folded into a snapshot; bootstrapping again"
                );
                self.bootstrap().await
            }
            200 => {
                let body = response.bytes().await?;
                self.metrics
                    .replication_bytes_received
                    .inc_by(body.len() as u64);
                self.apply_batch(body).await
            }
            _ => Err(checked(response)
                .await
                .err()
                .unwrap_or(FollowerError::NewLog)),
        }
    }

    async fn apply_batch(&mut self, body: Bytes) -> Result<(), FollowerError> {
        let mut frames = Frame::decode_all(body.clone())?;
        for (expected, frame) in (self.state.applied_frame_no + 1..).zip(&frames) {
            if frame.frame_no != expected {
                return Err(FollowerError::Gap {
                    expected,
                    got: frame.frame_no,
                });
            }
        }
        // Only whole transactions: the primary sends them, but a batch that
        // ends mid-transaction is cut back rather than half-applied.
        while frames.last().is_some_and(|f| !f.is_commit()) {
            frames.pop();
        }
        if frames.is_empty() {
            return Ok(());
        }
        let applier = self.applier.clone();
        let state = self.state.clone();
        // The batch's records as received, kept as they are (`Journal`).
        let batch = Batch {
            records: body.slice(..frames.len() * RECORD_SIZE),
            frames,
        };
        // Applied and recorded in one blocking call, which runs to its end
        // even if this future is dropped at shutdown.
        let (Batch { frames, .. }, applied) = tokio::task::spawn_blocking(move || {
            let applied = lock(&applier).apply_transactions(&batch, &state);
            (batch, applied)
        })
        .await
        .map_err(|e| FollowerError::Io(std::io::Error::other(e)))?;
        // What was committed counts even when the batch stopped early: the
        // next request starts after it, never injecting it a second time.
        if let Some(last) = applied.frames.checked_sub(1).map(|i| frames[i].frame_no) {
            self.state.applied_frame_no = last;
            self.mark_applied(last);
            self.status.primary_at(last);
            self.metrics
                .replication_frames_applied
                .inc_by(applied.frames as u64);
        }
        applied.error.map_or(Ok(()), Err)
    }

    fn mark_applied(&self, frame_no: u64) {
        self.status.mark_applied(frame_no);
        self.metrics.replication_frame_no.set(frame_no as i64);
    }

    async fn info(&self) -> Result<LogInfo, FollowerError> {
        Ok(checked(self.get(INFO_PATH).send().await?)
            .await?
            .json()
            .await?)
    }

    async fn bootstrap(&mut self) -> Result<(), FollowerError> {
        // Only a replica that never bootstrapped restores from the store: a
        // later bootstrap replaces a database already serving reads.
        if let Some(store) = self.seed_store.take() {
            if self.state.log_id.is_empty() {
                match self.bootstrap_from_backup(&store).await {
                    Ok(()) => return Ok(()),
                    Err(fallback) => {
                        tracing::warn!(
                            store = store.url(),
                            reason = fallback.reason(),
                            "cannot bootstrap from the backup store ({fallback}); bootstrapping from the primary"
                        );
                        self.metrics
                            .replication_backup_bootstrap_fallbacks
                            .with_label_values(&[fallback.reason()])
                            .inc();
                    }
                }
            }
        }
        let started = Instant::now();
        let response = checked(self.get(SNAPSHOT_PATH).send().await?).await?;
        let log_id = header(&response, LOG_ID_HEADER).unwrap_or_default();
        let snapshot_frame_no: u64 = header(&response, SNAPSHOT_FRAME_HEADER)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let path = self.bootstrap_path.clone();
        let mut file = std::fs::File::create(&path)?;
        let mut stream = response.bytes_stream();
        let mut bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            bytes += chunk.len() as u64;
            file.write_all(&chunk)?;
        }
        drop(file);
        self.metrics.replication_bytes_received.inc_by(bytes);
        // The snapshot's log: its epoch and history come with the next
        // timeline check.
        let info = self.info().await?;
        let state = State {
            epoch: info.epoch,
            history: info.history,
            log_id,
            applied_frame_no: snapshot_frame_no,
        };
        self.load(&path, state).await?;
        let _ = std::fs::remove_file(&path);
        self.check_timeline = info.log_id != self.state.log_id;
        self.metrics.replication_bootstraps.inc();
        tracing::info!(
            bytes,
            snapshot_frame_no,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "bootstrapped from the primary's snapshot"
        );
        Ok(())
    }

    /// Restores the primary's backup and loads it, if the primary's log
    /// continues from the restored point (asked before and after the
    /// restore, which takes a while).
    async fn bootstrap_from_backup(&mut self, store: &BackupStore) -> Result<(), Fallback> {
        let started = Instant::now();
        let asked = |e: FollowerError| Fallback::Primary(e.to_string());
        let before = self.info().await.map_err(asked)?;
        let dir = self.seed_path.clone();
        let restored = seed::restore_latest(store, &before, &dir).await;
        let loaded = match restored {
            Ok(seed) => self.load_seed(&before, seed).await,
            Err(fallback) => Err(fallback),
        };
        seed::remove(&dir);
        let (frame_no, downloaded) = loaded?;
        self.metrics.replication_backup_bootstraps.inc();
        tracing::info!(
            store = store.url(),
            frame_no,
            downloaded,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "bootstrapped from the backup store"
        );
        Ok(())
    }

    async fn load_seed(
        &mut self,
        before: &LogInfo,
        seed: seed::Seed,
    ) -> Result<(u64, u64), Fallback> {
        let after = self
            .info()
            .await
            .map_err(|e| Fallback::Primary(e.to_string()))?;
        seed::continues(before, &after, seed.frame_no)?;
        let state = State {
            log_id: after.log_id,
            applied_frame_no: seed.frame_no,
            epoch: after.epoch,
            history: after.history,
        };
        // A load that failed half-way committed nothing, or all of it as
        // one transaction a snapshot from the primary then replaces whole.
        self.load(&seed.db_file, state)
            .await
            .map_err(|e| Fallback::Unrestorable(format!("loading it: {e}")))?;
        Ok((seed.frame_no, seed.downloaded))
    }

    /// Loads a database file as one transaction, recorded as `state`, and
    /// follows on from it.
    async fn load(&mut self, path: &Path, state: State) -> Result<(), FollowerError> {
        let applier = self.applier.clone();
        let load = path.to_owned();
        let recorded = state.clone();
        tokio::task::spawn_blocking(move || lock(&applier).load_snapshot(&load, &recorded))
            .await
            .map_err(|e| FollowerError::Io(std::io::Error::other(e)))??;
        self.status.new_generation();
        self.status.follows(&state.log_id, state.epoch);
        let frame_no = state.applied_frame_no;
        self.state = state;
        self.status.mark_bootstrapped();
        self.mark_applied(frame_no);
        Ok(())
    }

    /// Follows the primary into its epoch (the timeline check found this
    /// replica's frames in its history): recorded before any of its frames.
    async fn enter_epoch(&mut self, info: &LogInfo) -> Result<(), FollowerError> {
        if info.epoch == self.state.epoch && info.history == self.state.history {
            return Ok(());
        }
        tracing::info!(
            from = self.state.epoch,
            to = info.epoch,
            applied = self.state.applied_frame_no,
            "following the primary into a new epoch"
        );
        let mut state = self.state.clone();
        state.epoch = info.epoch;
        state.history = info.history.clone();
        let applier = self.applier.clone();
        let recorded = state.clone();
        tokio::task::spawn_blocking(move || lock(&applier).record(&recorded))
            .await
            .map_err(|e| FollowerError::Io(std::io::Error::other(e)))??;
        self.status.follows(&state.log_id, state.epoch);
        self.state = state;
        Ok(())
    }
}

/// The replica's durable record: `replica.json` and the frames it keeps.
struct Journal {
    /// `replica.json`, rewritten in place after every applied batch.
    file: std::fs::File,
    retained: RetainedFrames,
}

impl Journal {
    /// Records the applied frame_no, log id and epoch: one small write in
    /// place (padded to a fixed size, within one disk sector) and one
    /// fdatasync, on the replication hot path. A record torn by a crash no
    /// longer parses, which means a clean re-bootstrap, never a wrong resume.
    fn record(&self, state: &State) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let mut record = serde_json::to_vec(state).expect("state serializes");
        if record.len() < STATE_RECORD_BYTES {
            record.resize(STATE_RECORD_BYTES, b' ');
        }
        self.file.write_all_at(&record, 0)?;
        self.file.set_len(record.len() as u64)?;
        self.file.sync_data()
    }

    /// Keeps the records of frames now durable in the WAL, then records
    /// them as applied.
    fn record_batch(&mut self, records: &[u8], state: &State) -> std::io::Result<()> {
        // Losing kept frames costs a lagging replica a bootstrap after a
        // promotion, never correctness: the batch is recorded regardless.
        if let Err(e) = self
            .retained
            .append(records)
            .and_then(|_| self.retained.sync())
        {
            tracing::warn!(error = %e, "cannot keep applied frames for a promotion");
        }
        self.record(state)
    }
}

fn lock(applier: &std::sync::Mutex<Applier>) -> std::sync::MutexGuard<'_, Applier> {
    applier
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn checked(response: reqwest::Response) -> Result<reqwest::Response, FollowerError> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    Err(FollowerError::Status { status, body })
}

/// What applying a batch did.
struct Applied {
    /// How many of its frames are committed in the WAL (whole transactions).
    frames: usize,
    /// Whether those are durable, so may be recorded in `replica.json`.
    synced: bool,
    /// What stopped the batch before its end, or failed the sync.
    error: Option<FollowerError>,
}

/// A batch from the primary: its frames (whole transactions), and the
/// records they were decoded from.
struct Batch {
    frames: Vec<Frame>,
    records: Bytes,
}

/// Injects frames through one connection, opened on first use and kept,
/// so applying a batch costs no connection set-up.
struct Applier {
    db: Database,
    conn: Option<DbConnection>,
    /// Where applied batches are recorded (`None` in unit tests).
    journal: Option<Journal>,
}

impl Applier {
    fn new(db: Database, journal: Option<Journal>) -> Self {
        Applier {
            db,
            conn: None,
            journal,
        }
    }

    fn record(&self, state: &State) -> std::io::Result<()> {
        self.journal.as_ref().map_or(Ok(()), |j| j.record(state))
    }

    fn connection(&mut self) -> Result<&DbConnection, FollowerError> {
        if self.conn.is_none() {
            self.conn = Some(self.db.apply_connection()?);
        }
        Ok(self
            .conn
            .as_ref()
            .expect("apply connection was just opened"))
    }

    /// Injects whole transactions into the replica's WAL, makes the ones
    /// committed durable, and records them as applied (after `state`).
    fn apply_transactions(&mut self, batch: &Batch, state: &State) -> Applied {
        let frames = &batch.frames;
        let (committed, error) = match self.connection() {
            Err(e) => (0, Some(e)),
            Ok(conn) => match inject_transactions(conn, frames) {
                Ok(()) => (frames.len(), None),
                Err(stopped) => (stopped.applied, Some(stopped.error.into())),
            },
        };
        let mut applied = Applied {
            frames: committed,
            synced: false,
            error,
        };
        if committed == 0 {
            return applied;
        }
        // One fsync for the whole batch (the applier does not sync per
        // transaction), before the caller records the batch as applied.
        match self.db.sync_wal() {
            Ok(()) => applied.synced = true,
            Err(e) => applied.error = applied.error.or(Some(e.into())),
        }
        if applied.synced {
            if let Some(journal) = &mut self.journal {
                let state = State {
                    applied_frame_no: frames[committed - 1].frame_no,
                    ..state.clone()
                };
                let records = &batch.records[..committed * RECORD_SIZE];
                if let Err(e) = journal.record_batch(records, &state) {
                    applied.error = applied.error.or(Some(e.into()));
                }
            }
        }
        if let Ok(conn) = self.connection() {
            checkpoint_if_large(conn);
        }
        applied
    }

    /// Loads a snapshot file as one transaction of all its pages, and
    /// records it as applied up to `state`.
    fn load_snapshot(&mut self, path: &Path, state: &State) -> Result<(), FollowerError> {
        let file = std::fs::File::open(path)?;
        let pages = (file.metadata()?.len() / PAGE_SIZE as u64) as u32;
        let mut read_error = None;
        let conn = self.connection()?;
        inject(
            conn,
            snapshot_frames(
                std::io::BufReader::with_capacity(64 * PAGE_SIZE, file),
                pages,
                &mut read_error,
            ),
        )?;
        if let Some(e) = read_error {
            return Err(e.into());
        }
        self.db.sync_wal()?;
        checkpoint_if_large(self.connection()?);
        if let Some(journal) = &mut self.journal {
            journal.retained.clear()?;
            journal.record(state)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::log::FramesAfter;

    fn frames_of(db: &Database, after: u64) -> Vec<Frame> {
        let log = db.log().unwrap();
        log.sync().unwrap();
        let FramesAfter::Frames(bytes) = log.frames_after(after, usize::MAX).unwrap() else {
            panic!("no frames")
        };
        Frame::decode_all(bytes).unwrap()
    }

    fn apply(applier: &mut Applier, frames: &[Frame]) {
        let mut records = bytes::BytesMut::new();
        frames.iter().for_each(|f| f.encode(&mut records));
        let batch = Batch {
            frames: frames.to_vec(),
            records: records.freeze(),
        };
        let applied = applier.apply_transactions(&batch, &State::default());
        assert!(applied.error.is_none(), "{:?}", applied.error);
        assert_eq!(applied.frames, frames.len());
    }

    #[tokio::test]
    async fn a_corrupted_frame_is_detected_and_nothing_of_its_batch_is_applied() {
        let tmp = tempfile::tempdir().unwrap();
        let primary =
            Database::open_primary(&tmp.path().join("p"), Duration::from_secs(1)).unwrap();
        let conn = primary.connect().unwrap();
        conn.execute_batch("create table t(x integer); insert into t values (1);")
            .unwrap();
        let good = frames_of(&primary, 0);
        let last = good.last().unwrap().frame_no;
        conn.execute_batch("insert into t values (2); insert into t values (3);")
            .unwrap();
        let more = frames_of(&primary, last);

        let rdir = tmp.path().join("r");
        let replica_db = Database::open_replica(&rdir, Duration::from_secs(1)).unwrap();
        let mut replica = Follower::new(
            crate::replication::primary_client::build("http://127.0.0.1:9", None).unwrap(),
            "http://127.0.0.1:9",
            None,
            replica_db.clone(),
            &rdir,
            None,
            Arc::new(ReplicaStatus::default()),
        )
        .unwrap();
        let (snapshot, _) = primary.log().unwrap().snapshot();
        lock(&replica.applier)
            .load_snapshot(&snapshot, &State::default())
            .unwrap();
        let encode = |frames: &[Frame]| {
            let mut out = bytes::BytesMut::new();
            frames.iter().for_each(|f| f.encode(&mut out));
            out
        };
        replica.apply_batch(encode(&good).freeze()).await.unwrap();
        assert_eq!(replica.state.applied_frame_no, last);

        // One flipped bit in the last page of the next batch.
        let mut corrupted = encode(&more);
        let at = corrupted.len() - 1;
        corrupted[at] ^= 1;
        let err = replica.apply_batch(corrupted.freeze()).await.unwrap_err();
        assert!(matches!(err, FollowerError::Frame(_)), "{err}");
        assert_eq!(replica.state.applied_frame_no, last, "nothing applied");
        let rows = || -> i64 {
            replica_db
                .connect()
                .unwrap()
                .query_row("select count(*) from t", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(rows(), 1);
        // The intact batch, fetched again, applies.
        replica.apply_batch(encode(&more).freeze()).await.unwrap();
        assert_eq!(rows(), 3);
    }

    #[test]
    fn injection_waits_for_the_wal_write_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let primary =
            Database::open_primary(&tmp.path().join("p"), Duration::from_secs(1)).unwrap();
        primary
            .connect()
            .unwrap()
            .execute_batch("create table t(x integer); insert into t values (1);")
            .unwrap();
        let replica =
            Database::open_replica(&tmp.path().join("r"), Duration::from_secs(1)).unwrap();
        let mut applier = Applier::new(replica.clone(), None);
        applier
            .load_snapshot(&primary.log().unwrap().snapshot().0, &State::default())
            .unwrap();
        // Another connection holds the write lock for a moment, as a reader
        // does when it finds the WAL index header mid-update.
        let holder = replica.apply_connection().unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            holder.execute_batch("ROLLBACK").unwrap();
        });
        apply(&mut applier, &frames_of(&primary, 0));
        release.join().unwrap();
        let n: i64 = replica
            .connect()
            .unwrap()
            .query_row("select count(*) from t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn frames_logged_on_a_primary_apply_on_a_replica() {
        let tmp = tempfile::tempdir().unwrap();
        let primary =
            Database::open_primary(&tmp.path().join("p"), Duration::from_secs(1)).unwrap();
        let conn = primary.connect().unwrap();
        conn.execute_batch(
            "create table t(a integer primary key, b text); insert into t values (1, 'one');",
        )
        .unwrap();
        let replica =
            Database::open_replica(&tmp.path().join("r"), Duration::from_secs(1)).unwrap();
        let (snapshot, snapshot_frame_no) = primary.log().unwrap().snapshot();
        assert_eq!(snapshot_frame_no, 0);
        let mut applier = Applier::new(replica.clone(), None);
        applier.load_snapshot(&snapshot, &State::default()).unwrap();
        let frames = frames_of(&primary, 0);
        assert!(frames.last().unwrap().is_commit());
        apply(&mut applier, &frames);
        let reader = replica.connect().unwrap();
        let b: String = reader
            .query_row("select b from t where a = 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(b, "one");

        // More commits, applied while the reader is open.
        let last = frames.last().unwrap().frame_no;
        conn.execute_batch("insert into t values (2, 'two'); update t set b = 'uno' where a = 1;")
            .unwrap();
        apply(&mut applier, &frames_of(&primary, last));
        let n: i64 = reader
            .query_row("select count(*) from t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        let b: String = reader
            .query_row("select b from t where a = 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(b, "uno");
        // A table created after the reader loaded its schema (and after it
        // prepared a statement that failed for lack of it).
        assert!(reader
            .prepare_cached("insert into later values (1)")
            .is_err());
        let before = frames_of(&primary, 0).last().unwrap().frame_no;
        conn.execute_batch("create table later(x integer); insert into later values (7);")
            .unwrap();
        apply(&mut applier, &frames_of(&primary, before));
        let x: i64 = reader
            .query_row("select x from later", [], |r| r.get(0))
            .unwrap();
        assert_eq!(x, 7);
        let stmt = reader
            .prepare_cached("insert into later values (1)")
            .unwrap();
        assert!(!stmt.readonly());
        // The replica refuses local writes.
        assert!(reader
            .execute_batch("insert into t values (3, 'x')")
            .is_err());
    }
}
