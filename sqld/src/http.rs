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
use crate::replication::token::Token;
use crate::role::{CurrentRole, Role};
use crate::shutdown::Shutdown;

#[derive(Clone)]
pub struct HttpState {
    pub db: Database,
    /// Set once the pg listener accepts; cleared when shutdown begins.
    pub ready: Arc<AtomicBool>,
    /// Bearer token the replication endpoints require (`None` only with
    /// `--dev`).
    pub replication_token: Option<Token>,
    /// Primary or replica: what the internal API serves, and what
    /// readiness and the replication metrics mean.
    pub role: CurrentRole,
    /// `--max-message-size`: a forwarded statement may be as large as one
    /// a client sends the primary directly.
    pub max_message_size: usize,
    /// Where the admin API asks for a role change (`sqld::run` makes it).
    pub role_changes: tokio::sync::mpsc::Sender<crate::role::RoleChange>,
}

/// `/health`, `/ready` and `/metrics`.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// The internal API: the admin API everywhere, and replication and
/// forwarded writes on a primary (a replica has none to serve).
pub fn internal_router(state: &HttpState) -> Router {
    let admin = crate::replication::admin::router(
        state.db.clone(),
        state.role.clone(),
        state.role_changes.clone(),
        state.replication_token.clone(),
    );
    let replication = match &*state.role.get() {
        Role::Primary(primary) => crate::replication::api::router(
            primary.log.clone(),
            Some(primary.remote_sessions.clone()),
            state.replication_token.clone(),
            crate::replication::api::forward_body_limit(state.max_message_size),
            state.db.metrics().clone(),
        ),
        Role::Replica(_) => Router::new(),
    };
    admin.merge(replication)
}

async fn ready(State(state): State<HttpState>) -> impl IntoResponse {
    if !state.ready.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n".to_owned(),
        );
    }
    let role = state.role.get();
    if let Role::Primary(primary) = &*role {
        if let Some(epoch) = primary.log.fenced_by() {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: fenced, another server was promoted (epoch {epoch})\n"),
            );
        }
    }
    if let Role::Replica(replica) = &*role {
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
    let metrics = state.db.metrics();
    let (db, wal) = state.db.file_sizes();
    metrics.database_size.set(db as i64);
    metrics.wal_size.set(wal as i64);
    let role = state.role.get();
    metrics.epoch.set(role.epoch() as i64);
    let fenced = matches!(&*role, Role::Primary(p) if p.log.fenced_by().is_some());
    metrics.fenced.set(fenced as i64);
    match &*role {
        Role::Replica(replica) => {
            metrics
                .replication_lag_frames
                .set(replica.status.lag_frames() as i64);
            metrics
                .replication_lag_seconds
                .set(replica.status.lag_seconds());
        }
        Role::Primary(primary) => {
            metrics
                .replication_frame_no
                .set(primary.log.info().current_frame_no as i64);
            metrics
                .replicas_connected
                .set(crate::replication::api::replicas_connected() as i64);
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
}

/// Serves `router` on `listener` until shutdown, over TLS when `tls` is
/// given.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    match tls {
        None => {
            let mut shutdown = shutdown;
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.recv().await })
                .await
        }
        Some(acceptor) => serve_tls(listener, router, acceptor, shutdown).await,
    }
}

/// How long a client has to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// axum over rustls: each accepted connection is a TLS handshake, then
/// HTTP/1.1 served by hyper. Stops accepting at shutdown; connections still
/// open end with the process.
async fn serve_tls(
    listener: TcpListener,
    router: Router,
    acceptor: tokio_rustls::TlsAcceptor,
    mut shutdown: Shutdown,
) -> std::io::Result<()> {
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "internal API accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.recv() => return Ok(()),
        };
        let acceptor = acceptor.clone();
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                };
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                tracing::debug!(%peer, error = %e, "internal API connection ended with an error");
            }
        });
    }
}
