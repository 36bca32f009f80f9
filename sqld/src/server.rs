//! `Server::serve`: the accept loop. It bounds the number of open sockets
//! (refusing the excess with SQLSTATE 53300, as Postgres does), turns on
//! TCP keepalive, hands each socket to the connection service on a thread
//! of its own, and on shutdown stops accepting and waits, up to a grace
//! period, for connections to finish.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pgwire::error::ErrorInfo;
use pgwire::messages::PgWireBackendMessage;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::{Service, ServiceExt};

use crate::error::sqlstate;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// How long a refused client gets to send its startup packet before the
/// refusal is written.
const REFUSAL_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Refusals answered at once; beyond this, excess sockets are just closed.
const MAX_PENDING_REFUSALS: usize = 64;
/// TCP keepalive on client sockets, as Postgres deployments commonly tune
/// it: a peer that vanished (a half-open connection, holding a transaction
/// perhaps) is found out after 60 s of silence plus 6 probes 10 s apart.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_PROBES: u32 = 6;

pub struct Server {
    listener: TcpListener,
    /// One permit per open socket (authenticated and authenticating
    /// connections, see `pg::admission`).
    connections: Arc<Semaphore>,
    max_sockets: usize,
    /// Bounds the tasks that tell refused clients why.
    refusals: Arc<Semaphore>,
    /// The open connections' sockets: at shutdown their read sides are
    /// shut, which ends a connection thread's blocking wait for the next
    /// message (see `pg::stream`).
    open: Arc<OpenSockets>,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct OpenSockets {
    next_id: AtomicU64,
    by_id: Mutex<HashMap<u64, std::net::TcpStream>>,
}

impl OpenSockets {
    /// Tracks a clone of `socket` until the returned id is `remove`d.
    fn insert(&self, socket: &std::net::TcpStream) -> std::io::Result<u64> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let clone = socket.try_clone()?;
        self.by_id
            .lock()
            .expect("open sockets poisoned")
            .insert(id, clone);
        Ok(id)
    }

    fn remove(&self, id: u64) {
        self.by_id
            .lock()
            .expect("open sockets poisoned")
            .remove(&id);
    }

    fn shut_reads(&self) {
        for socket in self.by_id.lock().expect("open sockets poisoned").values() {
            let _ = socket.shutdown(std::net::Shutdown::Read);
        }
    }
}

impl Server {
    pub fn new(listener: TcpListener, max_sockets: usize, metrics: Arc<Metrics>) -> Self {
        Server {
            listener,
            metrics,
            connections: Arc::new(Semaphore::new(max_sockets)),
            max_sockets,
            refusals: Arc::new(Semaphore::new(MAX_PENDING_REFUSALS)),
            open: Arc::default(),
        }
    }

    /// Accepts until `shutdown`, then waits up to `grace` for open
    /// connections to end.
    pub async fn serve<S>(self, service: S, mut shutdown: Shutdown, grace: Duration)
    where
        S: Service<TcpStream, Response = (), Error = std::io::Error> + Clone + Send + 'static,
    {
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = shutdown.recv() => break,
            };
            let socket = match accepted {
                Ok((socket, _)) => socket,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            if let Err(e) = keep_alive(&socket) {
                tracing::debug!(error = %e, "cannot enable TCP keepalive");
            }
            match self.connections.clone().try_acquire_owned() {
                Ok(permit) => {
                    self.metrics.connections_total.inc();
                    self.metrics.connections.inc();
                    let service = service.clone();
                    let metrics = self.metrics.clone();
                    let closed = move || {
                        metrics.connections.dec();
                        drop(permit);
                    };
                    let opened =
                        serve_on_own_thread(socket, service, &self.open, &self.metrics, closed);
                    if let Err(e) = opened {
                        // The permit went with `closed`; the gauge is ours.
                        self.metrics.connections.dec();
                        tracing::error!(error = %e, "cannot start a connection thread");
                    }
                }
                Err(_) => {
                    self.metrics.connections_rejected.inc();
                    if let Ok(permit) = self.refusals.clone().try_acquire_owned() {
                        tokio::spawn(async move {
                            refuse(socket).await;
                            drop(permit);
                        });
                    }
                }
            }
        }
        tracing::info!("stopped accepting connections; waiting for open ones to finish");
        self.open.shut_reads();
        let all = self.connections.acquire_many(self.max_sockets as u32);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(?grace, "grace period over with connections still open");
        }
    }
}

/// Reads the client's startup (answering an SSL request with 'N') and
/// replies with a FATAL "too many connections", so clients see why.
/// Drives one connection on a thread of its own, with a single-threaded
/// runtime for its socket and timers: its statements run inline there (see
/// `scheduler`), so a long one blocks nobody else. `closed` runs when the
/// connection is over, whatever happened.
fn serve_on_own_thread<S>(
    socket: TcpStream,
    service: S,
    open: &Arc<OpenSockets>,
    metrics: &Arc<Metrics>,
    closed: impl FnOnce() + Send + 'static,
) -> std::io::Result<()>
where
    S: Service<TcpStream, Response = (), Error = std::io::Error> + Send + 'static,
{
    let socket = socket.into_std()?;
    let id = open.insert(&socket)?;
    let registry = open.clone();
    let metrics = metrics.clone();
    let spawned = std::thread::Builder::new()
        .name("sqld-conn".to_owned())
        .spawn(move || {
            // Runs however the thread ends, a panic included: the socket
            // closes and the connection's slot is freed.
            let _finished = Finished(Some(move || {
                registry.remove(id);
                closed();
            }));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let runtime = match runtime {
                Ok(runtime) => runtime,
                Err(e) => return tracing::error!(error = %e, "cannot start a connection's runtime"),
            };
            let drive = std::panic::AssertUnwindSafe(async move {
                let result = match TcpStream::from_std(socket) {
                    Ok(socket) => service.oneshot(socket).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
            if std::panic::catch_unwind(|| runtime.block_on(drive)).is_err() {
                metrics.connection_panics.inc();
                tracing::error!("a connection's thread panicked; the connection was closed");
            }
        });
    if spawned.is_err() {
        open.remove(id);
    }
    spawned.map(drop)
}

fn keep_alive(socket: &TcpStream) -> std::io::Result<()> {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    socket2::SockRef::from(socket).set_tcp_keepalive(&keepalive)
}

/// Calls its function when dropped.
struct Finished<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for Finished<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

async fn refuse(socket: TcpStream) {
    let refusal = async {
        let Ok(Some(mut framed)) = pgwire::tokio::server::negotiate_tls::<()>(socket, None).await
        else {
            return;
        };
        let _ = framed.next().await;
        let info = ErrorInfo::new(
            "FATAL".to_owned(),
            sqlstate::TOO_MANY_CONNECTIONS.to_owned(),
            "sorry, too many clients already".to_owned(),
        );
        let _ = framed
            .send(PgWireBackendMessage::ErrorResponse(info.into()))
            .await;
    };
    let _ = tokio::time::timeout(REFUSAL_READ_TIMEOUT, refusal).await;
}
