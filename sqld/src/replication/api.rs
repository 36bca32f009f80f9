//! The primary's internal replication API, served on the HTTP listener
//! under versioned paths:
//!
//! - `GET /v1/replication/info`: log id, newest durable frame, snapshot
//!   frame (JSON);
//! - `GET /v1/replication/snapshot`: the snapshot file, streamed, with the
//!   frame it stands for in `x-sqld-snapshot-frame-no`;
//! - `GET /v1/replication/frames?after=N&wait_ms=W&max_frames=M&log_id=L`:
//!   frame records after N, whole transactions only (200); nothing new
//!   within W milliseconds (204); N is older than the snapshot, or L is not
//!   this log (409: bootstrap). The newest durable frame comes in
//!   `x-sqld-current-frame-no`; replicas name themselves in
//!   `x-sqld-replica-id`.
//! - `POST /v1/replication/execute`: a write forwarded by a replica (see
//!   `remote`), JSON in and out (`wire`).
//!
//! Every answer names the log in `x-sqld-log-id` and its epoch in
//! `x-sqld-epoch`. Replicas send theirs (`epoch=E` on info and frames, the
//! header on forwarded statements): a poll from another epoch is answered
//! at once with 409, and a newer epoch than this log's fences this primary
//! (`ReplicationLog::fence_if_newer`). Requests must carry
//! `Authorization: Bearer <token>` (see `token`; only `--dev` runs the API
//! open).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::frame::RECORD_SIZE;
use super::log::{FramesAfter, ReplicationLog};
use super::remote::RemoteSessions;
use super::token::Token;
use super::wire::{
    ForwardRequest, CURRENT_FRAME_HEADER, EPOCH_HEADER, EXECUTE_PATH, FRAMES_PATH, INFO_PATH,
    LOG_ID_HEADER, REPLICA_ID_HEADER, SNAPSHOT_FRAME_HEADER, SNAPSHOT_PATH,
};
use crate::metrics::Metrics;

/// A replica counts as connected this long after its last poll (a long-poll
/// lasts at most `MAX_WAIT`).
const CONNECTED_WINDOW: Duration = Duration::from_secs(30);

/// When each replica last asked for frames.
static LAST_POLLS: LazyLock<Mutex<HashMap<String, Instant>>> = LazyLock::new(Default::default);

fn record_poll(headers: &HeaderMap) {
    if let Some(id) = headers.get(REPLICA_ID_HEADER).and_then(|v| v.to_str().ok()) {
        let mut polls = LAST_POLLS.lock().expect("poll registry poisoned");
        if polls.len() < 10_000 || polls.contains_key(id) {
            polls.insert(id.to_owned(), Instant::now());
        }
    }
}

/// Replicas that polled within the last `CONNECTED_WINDOW`.
pub fn replicas_connected() -> usize {
    let mut polls = LAST_POLLS.lock().expect("poll registry poisoned");
    polls.retain(|_, at| at.elapsed() < CONNECTED_WINDOW);
    polls.len()
}
/// Long-polls never wait longer than this, whatever the replica asks.
const MAX_WAIT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_FRAMES: usize = 1024;
/// Whatever `max_frames` a poll asks for, an answer holds at most about
/// this many frames (16 MiB), plus the rest of a transaction it started:
/// frames are materialised in memory before they are sent.
const MAX_FRAMES_PER_ANSWER: usize = 4096;
/// Frame answers being read from the log at once; more polls wait their
/// turn, so concurrent pollers cannot multiply the server's memory.
const CONCURRENT_FRAME_READS: usize = 8;
static FRAME_READS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(CONCURRENT_FRAME_READS);

/// How much larger than its text JSON can make a string: a control
/// character becomes `\u00XX`.
const JSON_WORST_EXPANSION: usize = 6;
/// Room for the rest of a forwarded request (names, column types...).
const FORWARD_BODY_HEADROOM: usize = 64 * 1024;

/// The largest forwarded request the primary reads: a client may send the
/// statement (Parse or Query) and its parameters (Bind) in two messages of
/// up to `max_message_size` each, and every one of their bytes may be
/// escaped in the JSON (blobs only grow by a third, as base64).
pub fn forward_body_limit(max_message_size: usize) -> usize {
    max_message_size
        .saturating_mul(2 * JSON_WORST_EXPANSION)
        .saturating_add(FORWARD_BODY_HEADROOM)
}

#[derive(Clone)]
struct ApiState {
    log: Arc<ReplicationLog>,
    sessions: Option<Arc<RemoteSessions>>,
    token: Option<Token>,
    metrics: Arc<Metrics>,
}

pub fn router(
    log: Arc<ReplicationLog>,
    sessions: Option<Arc<RemoteSessions>>,
    token: Option<Token>,
    max_forward_body: usize,
    metrics: Arc<Metrics>,
) -> Router {
    let state = ApiState {
        log,
        sessions,
        token,
        metrics,
    };
    Router::new()
        .route(INFO_PATH, get(info))
        .route(SNAPSHOT_PATH, get(snapshot))
        .route(FRAMES_PATH, get(frames))
        .route(
            EXECUTE_PATH,
            post(execute).layer(DefaultBodyLimit::max(max_forward_body)),
        )
        .route_layer(middleware::from_fn_with_state(
            state.token.clone(),
            require_token,
        ))
        .with_state(state)
}

/// Refuses a request without the replication token (`None`: `--dev`).
pub async fn require_token(
    State(token): State<Option<Token>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        if !token.admits(given) {
            return (
                StatusCode::UNAUTHORIZED,
                "missing or wrong replication token\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// The log's id and epoch, on every answer.
fn log_id_header(log: &ReplicationLog) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&log.info().log_id) {
        headers.insert(LOG_ID_HEADER, v);
    }
    headers.insert(EPOCH_HEADER, HeaderValue::from(log.epoch()));
    headers
}

/// The epoch an asker is in: a newer one than this log's means this
/// primary was replaced, and it fences itself.
fn hear_epoch(log: &ReplicationLog, epoch: Option<u64>) {
    if let Some(epoch) = epoch {
        log.fence_if_newer(epoch);
    }
}

#[derive(Debug, Deserialize)]
struct InfoQuery {
    epoch: Option<u64>,
}

/// A replica's long-poll in progress, counted as contact until it ends
/// (dropped with the request, however it ends).
struct Polling(Arc<ReplicationLog>);

impl Polling {
    fn start(log: &Arc<ReplicationLog>) -> Self {
        log.contact(1);
        Polling(log.clone())
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        self.0.contact(-1);
    }
}

async fn info(State(state): State<ApiState>, Query(q): Query<InfoQuery>) -> impl IntoResponse {
    state.log.contact(0);
    hear_epoch(&state.log, q.epoch);
    (log_id_header(&state.log), Json(state.log.info()))
}

async fn snapshot(State(state): State<ApiState>) -> Response {
    let (path, frame_no) = state.log.snapshot();
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("snapshot unavailable: {e}\n"),
            )
                .into_response()
        }
    };
    let mut headers = log_id_header(&state.log);
    headers.insert(SNAPSHOT_FRAME_HEADER, HeaderValue::from(frame_no));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    state.metrics.snapshots_served.inc();
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    (headers, body).into_response()
}

async fn execute(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Json(request): Json<ForwardRequest>,
) -> Response {
    let owner = headers
        .get(REPLICA_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let epoch = headers
        .get(EPOCH_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    hear_epoch(&state.log, epoch);
    match &state.sessions {
        Some(sessions) => Json(sessions.execute(request, owner).await).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "this server does not take forwarded writes\n",
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct FramesQuery {
    after: u64,
    #[serde(default)]
    wait_ms: u64,
    max_frames: Option<usize>,
    /// The log the asker follows: if it is not this one, the answer comes
    /// at once (with this log's id) instead of after the long-poll.
    log_id: Option<String>,
    /// The asker's epoch: if it is not this one, the answer comes at once
    /// too (a newer one fences this primary).
    epoch: Option<u64>,
}

async fn frames(
    State(state): State<ApiState>,
    request_headers: HeaderMap,
    Query(q): Query<FramesQuery>,
) -> Response {
    record_poll(&request_headers);
    hear_epoch(&state.log, q.epoch);
    if q.epoch.is_some_and(|e| e != state.log.epoch()) {
        return (
            StatusCode::CONFLICT,
            log_id_header(&state.log),
            "another epoch: check the timeline\n",
        )
            .into_response();
    }
    if q.log_id.is_some_and(|id| id != state.log.info().log_id) {
        return (
            StatusCode::CONFLICT,
            log_id_header(&state.log),
            "a different log: bootstrap\n",
        )
            .into_response();
    }
    // A replica asks for frames after those it recorded durably: that is
    // its acknowledgement, which synchronous commits wait for.
    if let Some(id) = request_headers
        .get(REPLICA_ID_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        state
            .log
            .sync_replicas()
            .acknowledge(id, q.after, state.log.durable_frame_no());
    }
    let wait = Duration::from_millis(q.wait_ms).min(MAX_WAIT);
    let mut durable = state.log.subscribe();
    // Long-poll: answer as soon as a commit after `after` is durable. A
    // waiting poll is contact with a replica (`--fence-after`).
    let polling = Polling::start(&state.log);
    let _ = tokio::time::timeout(wait, durable.wait_for(|d| *d > q.after)).await;
    drop(polling);
    let log = state.log.clone();
    let max_frames = q
        .max_frames
        .unwrap_or(DEFAULT_MAX_FRAMES)
        .clamp(1, MAX_FRAMES_PER_ANSWER);
    let Ok(_reading) = FRAME_READS.acquire().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let read = tokio::task::spawn_blocking(move || log.frames_after(q.after, max_frames)).await;
    let mut headers = log_id_header(&state.log);
    headers.insert(
        CURRENT_FRAME_HEADER,
        HeaderValue::from(state.log.info().current_frame_no),
    );
    match read {
        Ok(Ok(FramesAfter::Frames(bytes))) => {
            state
                .metrics
                .frames_served
                .inc_by((bytes.len() / RECORD_SIZE) as u64);
            (StatusCode::OK, headers, bytes).into_response()
        }
        Ok(Ok(FramesAfter::UpToDate)) => (StatusCode::NO_CONTENT, headers).into_response(),
        Ok(Ok(FramesAfter::SnapshotNeeded)) => (
            StatusCode::CONFLICT,
            headers,
            "frames folded into the snapshot: bootstrap\n",
        )
            .into_response(),
        Ok(Err(e)) => {
            (StatusCode::INTERNAL_SERVER_ERROR, headers, format!("{e}\n")).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, headers, format!("{e}\n")).into_response(),
    }
}
