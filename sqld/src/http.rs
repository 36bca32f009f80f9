//! The HTTP listener: `/health` (the process is alive), `/ready` (the
//! database is open and the server accepts connections), `/metrics`
//! (Prometheus text format).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::database::Database;
use crate::metrics::METRICS;
use crate::replication::forward::RemoteSessions;
use crate::replication::replica::ReplicaStatus;
use crate::replication::token::Token;
use crate::shutdown::Shutdown;

#[derive(Clone)]
pub struct HttpState {
    pub db: Database,
    /// Set once the pg listener accepts; cleared when shutdown begins.
    pub ready: Arc<AtomicBool>,
    /// Bearer token the replication endpoints require (`None` only with
    /// `--dev`).
    pub replication_token: Option<Token>,
    /// On a primary: runs the writes replicas forward.
    pub remote_sessions: Option<Arc<RemoteSessions>>,
    /// On a replica: its progress, which readiness depends on.
    pub replica: Option<ReplicaReadiness>,
}

#[derive(Clone)]
pub struct ReplicaReadiness {
    pub status: Arc<ReplicaStatus>,
    /// Not ready while further behind the primary than this.
    pub max_lag_frames: u64,
}

pub fn router(state: HttpState) -> Router {
    let replication = state.db.log().map(|log| {
        crate::replication::api::router(
            log.clone(),
            state.remote_sessions.clone(),
            state.replication_token.clone(),
        )
    });
    let router = Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state);
    match replication {
        Some(api) => router.merge(api),
        None => router,
    }
}

async fn ready(State(state): State<HttpState>) -> impl IntoResponse {
    if !state.ready.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n".to_owned(),
        );
    }
    if let Some(replica) = &state.replica {
        if !replica.status.bootstrapped.load(Ordering::SeqCst) {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: bootstrapping\n".to_owned(),
            );
        }
        let lag = replica.status.lag_frames();
        if lag > replica.max_lag_frames {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {lag} frames behind the primary\n"),
            );
        }
    }
    (StatusCode::OK, "ready\n".to_owned())
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    let (db, wal) = state.db.file_sizes();
    METRICS.database_size.set(db as i64);
    METRICS.wal_size.set(wal as i64);
    match (&state.replica, state.db.log()) {
        (Some(replica), _) => {
            METRICS
                .replication_lag_frames
                .set(replica.status.lag_frames() as i64);
            METRICS
                .replication_lag_seconds
                .set(replica.status.lag_seconds());
        }
        (None, Some(log)) => {
            METRICS
                .replication_frame_no
                .set(log.info().current_frame_no as i64);
            METRICS
                .replicas_connected
                .set(crate::replication::api::replicas_connected() as i64);
        }
        (None, None) => {}
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        METRICS.render(),
    )
}

pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    mut shutdown: Shutdown,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.recv().await })
        .await
}
