//! The operator's HTTP endpoint: `/metrics` (Prometheus text), `/healthz`
//! (the process is alive) and `/readyz` (connected to the API server and
//! either leading or standing by, ready to take over).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;

/// What the endpoints report on.
#[derive(Clone)]
pub struct HealthState {
    pub metrics: Metrics,
    /// Set once the API server answered and the controller (or the standby
    /// loop) runs.
    pub ready: Arc<AtomicBool>,
}

/// The router, separate from serving it so tests can call it directly.
pub fn router(state: HealthState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(s): State<HealthState>) -> String {
    s.metrics.encode()
}

async fn readyz(State(s): State<HealthState>) -> (StatusCode, &'static str) {
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Serves the endpoints until the task is dropped.
pub async fn serve(addr: SocketAddr, state: HealthState) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(listener, state).await
}

/// Serves the endpoints on a bound listener.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: HealthState,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}
