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
use crate::shutdown::Shutdown;

#[derive(Clone)]
pub struct HttpState {
    pub db: Database,
    /// Set once the pg listener accepts; cleared when shutdown begins.
    pub ready: Arc<AtomicBool>,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn ready(State(state): State<HttpState>) -> impl IntoResponse {
    if state.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    let (db, wal) = state.db.file_sizes();
    METRICS.database_size.set(db as i64);
    METRICS.wal_size.set(wal as i64);
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
