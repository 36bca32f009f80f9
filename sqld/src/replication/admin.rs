//! The admin API, beside the replication API and behind the same token:
//! what an orchestrator (the operator, `sqld dev-cluster`, a person with
//! `sqld promote`) needs to choose and move the primary.
//!
//! - `GET /v1/admin/status`: role, epoch, log id, applied or durable
//!   frame_no, whether fenced (JSON, `InstanceStatus`);
//! - `POST /v1/admin/promote`: on a replica, become the primary in a new
//!   epoch (202: under way; poll the status);
//! - `POST /v1/admin/fence?epoch=N[&primary_url=U]`: on a primary, stop
//!   taking writes because epoch N began elsewhere (and follow U);
//! - `POST /v1/admin/follow?primary_url=U`: follow the primary at U (a
//!   replica re-pointed, or a replaced primary rejoining as a replica);
//! - `POST /v1/admin/handover?drain_ms=D`: on a primary, the first step of
//!   a switchover (`sqld switchover` drives the rest): no new writes, the
//!   running one finishes, every frame durable; `cancel=true` undoes it.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::api::require_token;
use super::token::Token;
use crate::database::Database;
use crate::role::{CurrentRole, Role, RoleChange};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub const STATUS_PATH: &str = "/v1/admin/status";
pub const PROMOTE_PATH: &str = "/v1/admin/promote";
pub const FENCE_PATH: &str = "/v1/admin/fence";
pub const FOLLOW_PATH: &str = "/v1/admin/follow";
pub const HANDOVER_PATH: &str = "/v1/admin/handover";

/// One instance, as an orchestrator compares them: the most advanced
/// replica has the highest `applied_frame_no` in the highest epoch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InstanceStatus {
    /// `primary` or `replica`.
    pub role: String,
    pub epoch: u64,
    pub log_id: String,
    /// On a primary: its newest durable frame. On a replica: the last
    /// frame it applied (and made durable).
    pub frame_no: u64,
    /// A primary that learned of a newer epoch: it takes no writes.
    pub fenced: bool,
    /// On a replica: the primary it follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_url: Option<String>,
    /// A role change asked for and not finished yet.
    #[serde(default)]
    pub changing: bool,
}

#[derive(Clone)]
struct AdminState {
    db: Database,
    role: CurrentRole,
    changes: mpsc::Sender<RoleChange>,
    /// Set once a change is asked for: the server restarts in its new
    /// role, with a new state.
    changing: Arc<AtomicBool>,
}

pub fn router(
    db: Database,
    role: CurrentRole,
    changes: mpsc::Sender<RoleChange>,
    token: Option<Token>,
) -> Router {
    Router::new()
        .route(STATUS_PATH, get(status))
        .route(PROMOTE_PATH, post(promote))
        .route(FENCE_PATH, post(fence))
        .route(HANDOVER_PATH, post(handover))
        .route(FOLLOW_PATH, post(follow))
        .route_layer(middleware::from_fn_with_state(token, require_token))
        .with_state(AdminState {
            db,
            role,
            changes,
            changing: Arc::default(),
        })
}

fn instance(state: &AdminState) -> InstanceStatus {
    let role = state.role.get();
    let changing = state.changing.load(Ordering::SeqCst);
    match &*role {
        Role::Primary(primary) => {
            let info = primary.log.info();
            InstanceStatus {
                role: "primary".into(),
                epoch: info.epoch,
                log_id: info.log_id,
                frame_no: info.current_frame_no,
                fenced: primary.log.fenced_by().is_some(),
                primary_url: None,
                changing,
            }
        }
        Role::Replica(replica) => InstanceStatus {
            role: "replica".into(),
            epoch: role.epoch(),
            log_id: replica.status.log_id(),
            frame_no: replica.status.applied_frame_no.load(Ordering::SeqCst),
            fenced: false,
            primary_url: Some(replica.primary_url.clone()),
            changing,
        },
    }
}

async fn status(State(state): State<AdminState>) -> Json<InstanceStatus> {
    // An orchestrator watching a primary is contact (`--fence-after`).
    if let Role::Primary(primary) = &*state.role.get() {
        primary.log.contact(0);
    }
    Json(instance(&state))
}

/// Asks for a role change; at most one is under way.
fn ask(state: &AdminState, change: RoleChange) -> Response {
    if state.changing.swap(true, Ordering::SeqCst) {
        return (StatusCode::CONFLICT, "a role change is already under way\n").into_response();
    }
    match state.changes.try_send(change) {
        Ok(()) => (StatusCode::ACCEPTED, Json(instance(state))).into_response(),
        Err(_) => (StatusCode::CONFLICT, "a role change is already under way\n").into_response(),
    }
}

async fn promote(State(state): State<AdminState>) -> Response {
    let role = state.role.get();
    let Role::Replica(replica) = &*role else {
        return (StatusCode::CONFLICT, "this server is already the primary\n").into_response();
    };
    // What it recorded counts, not whether the primary answered since the
    // start: a replica restarted while its primary is down is promotable.
    if replica.status.log_id().is_empty() {
        return (
            StatusCode::CONFLICT,
            "this replica has not bootstrapped yet: it has nothing to promote\n",
        )
            .into_response();
    }
    ask(&state, RoleChange::Promote)
}

#[derive(Debug, Deserialize)]
struct FenceQuery {
    epoch: u64,
    /// The new primary: once fenced, follow it.
    primary_url: Option<String>,
}

async fn fence(State(state): State<AdminState>, Query(q): Query<FenceQuery>) -> Response {
    let role = state.role.get();
    let Role::Primary(primary) = &*role else {
        return (StatusCode::CONFLICT, "a replica takes no writes to fence\n").into_response();
    };
    if q.epoch <= primary.log.epoch() {
        return (
            StatusCode::CONFLICT,
            format!(
                "epoch {} is not newer than this primary's ({})\n",
                q.epoch,
                primary.log.epoch()
            ),
        )
            .into_response();
    }
    primary.log.fence_if_newer(q.epoch);
    match q.primary_url.as_deref().map(follow_url) {
        // A fenced primary rejoins as a replica of the one that replaced it.
        Some(Some(url)) => {
            tracing::warn!(primary = %url, "fenced: rejoining as a replica of the new primary");
            ask(&state, RoleChange::Follow(url))
        }
        Some(None) => not_a_url(),
        None => Json(instance(&state)).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct HandoverQuery {
    /// How long the running write transaction may take to finish.
    #[serde(default = "default_drain_ms")]
    drain_ms: u64,
    /// Take writes again: the switchover did not happen.
    #[serde(default)]
    cancel: bool,
}

fn default_drain_ms() -> u64 {
    1000
}

/// The first step of a switchover, on the primary: refuse new write
/// transactions (25006), wait for the running one to end (up to
/// `drain_ms`, else the handover is called off: 409), and make every frame
/// durable. The answer's `frame_no` is then the last frame this primary
/// will have, which the target must apply before it is promoted.
/// `cancel=true` takes writes again.
async fn handover(State(state): State<AdminState>, Query(q): Query<HandoverQuery>) -> Response {
    let role = state.role.get();
    let Role::Primary(primary) = &*role else {
        return (StatusCode::CONFLICT, "only a primary hands over\n").into_response();
    };
    if q.cancel {
        primary.log.reopen_to_writers();
        return Json(instance(&state)).into_response();
    }
    primary.log.close_to_writers();
    let (gate, log) = (state.db.write_gate().clone(), primary.log.clone());
    let drain = std::time::Duration::from_millis(q.drain_ms);
    // Once the gate is ours, no write transaction runs, and none starts
    // after (a writer checks again once it has the gate).
    let drained = tokio::task::spawn_blocking(move || match gate.acquire(drain) {
        Some(_held) => log.sync().map(|()| true),
        None => Ok(false),
    })
    .await;
    match drained {
        Ok(Ok(true)) => Json(instance(&state)).into_response(),
        Ok(Ok(false)) => {
            primary.log.reopen_to_writers();
            (
                StatusCode::CONFLICT,
                format!(
                    "a write transaction was still running after {drain:?}: handover called off\n"
                ),
            )
                .into_response()
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct FollowQuery {
    primary_url: String,
}

async fn follow(State(state): State<AdminState>, Query(q): Query<FollowQuery>) -> Response {
    match follow_url(&q.primary_url) {
        Some(url) => ask(&state, RoleChange::Follow(url)),
        None => not_a_url(),
    }
}

/// A primary URL to follow, if it is one.
fn follow_url(url: &str) -> Option<String> {
    let url = url.trim_end_matches('/').to_owned();
    (url.starts_with("http://") || url.starts_with("https://")).then_some(url)
}

fn not_a_url() -> Response {
    (
        StatusCode::BAD_REQUEST,
        "primary_url must be an http:// or https:// URL\n",
    )
        .into_response()
}

/// How often a newly promoted primary tells the one it replaced to fence
/// itself, until that one answers.
const FENCE_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// Tells the primary at `url`, which this one replaced in `epoch`, to take
/// no more writes; retried until it answers (it may be paused, partitioned
/// or dead) or this server stops. Replicas' polls and forwarded writes in
/// the new epoch fence it too; this reaches it when none of them does.
pub async fn fence_replaced(
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    epoch: u64,
    advertised: Option<String>,
    mut shutdown: crate::shutdown::Shutdown,
) {
    let Ok(mut target) = reqwest::Url::parse(&format!("{url}{FENCE_PATH}")) else {
        return tracing::error!(%url, "cannot fence the replaced primary: not a URL");
    };
    target
        .query_pairs_mut()
        .append_pair("epoch", &epoch.to_string());
    if let Some(advertised) = &advertised {
        target
            .query_pairs_mut()
            .append_pair("primary_url", advertised);
    }
    loop {
        let mut request = http.post(target.clone()).timeout(2 * FENCE_RETRY);
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            // Fenced now, or it already knows (a replica, or a newer epoch).
            Ok(r) if r.status().is_success() || r.status() == StatusCode::CONFLICT => {
                tracing::info!(%url, epoch, "the replaced primary is fenced");
                return;
            }
            Ok(r) => tracing::debug!(%url, status = %r.status(), "fencing the replaced primary"),
            Err(e) => tracing::debug!(%url, error = %e, "the replaced primary does not answer yet"),
        }
        tokio::select! {
            _ = tokio::time::sleep(FENCE_RETRY) => {}
            _ = shutdown.recv() => return,
        }
    }
}
