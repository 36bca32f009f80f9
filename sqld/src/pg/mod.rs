//! The Postgres protocol side of sqld. `PgConnectionFactory` is a tower
//! service over accepted sockets: each call drives one connection
//! (`connection`) with the shared handlers (`auth` for startup, `handler`
//! for queries), reading through `io`'s guard from the client's `stream`.

pub(crate) mod admission;
pub(crate) mod auth;
pub(crate) mod connection;
mod copy;
mod handler;
pub(crate) mod io;
mod reply;
mod shape;
pub mod sqlite_api;
mod statements;
mod stream;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::ConnectionManager;
use pgwire::tokio::TlsAcceptor;
use tokio::net::TcpStream;
use tower::Service;

pub use admission::AdmissionLimits;
pub use auth::{Users, UsersError};
use handler::{ExtendedHandler, SqlHandler};

use crate::config::AuthMethod;
use crate::database::Database;
use crate::metrics::Metrics;
use crate::scheduler::SessionConfig;
use crate::shutdown::Shutdown;

/// Protocol limits, from the command line.
#[derive(Debug, Clone)]
pub struct ProtocolLimits {
    pub max_message_size: usize,
    pub startup_timeout: Duration,
    /// A blocked send to the client gives up after this (plain TCP).
    pub client_write_timeout: Option<Duration>,
    pub idle_in_transaction_timeout: Option<Duration>,
    /// Places for authenticated and authenticating connections.
    pub admission: AdmissionLimits,
}

/// What every connection shares: the handlers and limits.
pub struct PgShared {
    startup: Arc<auth::Startup>,
    simple: Arc<SqlHandler>,
    extended: Arc<ExtendedHandler>,
    copy: Arc<copy::Copier<SqlHandler>>,
    cancel: Arc<DefaultCancelHandler>,
    tls: Option<TlsAcceptor>,
    limits: ProtocolLimits,
    admission: Arc<admission::Admission>,
    metrics: Arc<Metrics>,
}

/// Makes a protocol driver for each accepted socket.
#[derive(Clone)]
pub struct PgConnectionFactory {
    shared: Arc<PgShared>,
    shutdown: Shutdown,
}

pub struct FactoryConfig {
    pub db: Database,
    pub session_limits: SessionConfig,
    pub auth: AuthMethod,
    pub users: Arc<Users>,
    pub tls: Option<TlsAcceptor>,
    pub limits: ProtocolLimits,
}

impl PgConnectionFactory {
    pub fn new(config: FactoryConfig, shutdown: Shutdown) -> Self {
        let cancels = Arc::new(ConnectionManager::new());
        let metrics = config.db.metrics().clone();
        let sessions = config.db.sessions().clone();
        let sql = Arc::new(SqlHandler::new(config.db, config.session_limits));
        let shared = PgShared {
            startup: Arc::new(auth::Startup::new(
                config.auth,
                config.users,
                cancels.clone(),
                sessions,
            )),
            extended: Arc::new(ExtendedHandler::new(sql.clone())),
            copy: Arc::new(copy::Copier::new(sql.clone())),
            simple: sql,
            cancel: Arc::new(DefaultCancelHandler::new(cancels)),
            tls: config.tls,
            admission: admission::Admission::new(config.limits.admission, metrics.clone()),
            limits: config.limits,
            metrics,
        };
        PgConnectionFactory {
            shared: Arc::new(shared),
            shutdown,
        }
    }
}

impl Service<TcpStream> for PgConnectionFactory {
    type Response = ();
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, socket: TcpStream) -> Self::Future {
        Box::pin(connection::drive(
            socket,
            self.shared.clone(),
            self.shutdown.clone(),
        ))
    }
}
