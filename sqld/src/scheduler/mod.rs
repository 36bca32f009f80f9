//! `SchedulerService`: where a `Query` reaches libsql.
//!
//! SQLite calls block, so each session's connection lives on a dedicated
//! thread (`worker`), never on the async reactor. Sessions run side by side:
//! in WAL mode readers proceed concurrently and SQLite admits one writer at
//! a time (others wait on the busy timeout).
//!
//! The service is a plain tower `Service<Query>`; timeouts and metrics wrap
//! it as layers. Dropping a response future before it completes (a
//! statement timeout, a CancelRequest, a vanished client) interrupts the
//! statement it was waiting for.

mod worker;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll};

use libsql_sys::rusqlite::InterruptHandle;
use tokio::sync::oneshot;
use tower::Service;

use crate::database::{Database, DatabaseError};
use crate::error::{sqlstate, SqlError};
use crate::query::{Query, Request, Response};
use crate::replication::forward::ReplicaLink;

/// What every session's worker is configured with.
#[derive(Clone)]
pub struct SessionConfig {
    /// A result set larger than this (in bytes of values) fails with 54000
    /// rather than exhausting the server's memory.
    pub max_result_bytes: usize,
    /// On a replica: how to forward writes and wait for them to arrive.
    pub replica: Option<Arc<ReplicaLink>>,
    /// The client negotiated the SQLite API dialect at startup (see
    /// `pg::sqlite_api`): a failed statement leaves the transaction open as
    /// SQLite does instead of aborting it, and an INSERT's command tag
    /// carries the last inserted rowid in its oid slot.
    pub sqlite_api: bool,
}

/// One client session: a handle on the thread that owns its libsql
/// connection. Dropping the last handle ends the thread, which closes the
/// connection (rolling back any open transaction).
pub struct Session {
    pub id: u64,
    jobs: mpsc::Sender<Job>,
    /// Shared with the worker, which replaces it if it reopens the
    /// connection.
    interrupt: Arc<Mutex<InterruptHandle>>,
}

/// A request on its way to a session's worker thread.
struct Job {
    request: Request,
    reply: oneshot::Sender<Response>,
    /// Set when the requester gave up; the worker skips what it has not
    /// started yet.
    cancelled: Arc<AtomicBool>,
}

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

impl Session {
    /// Opens a connection on a new worker thread.
    pub async fn open(db: &Database, limits: SessionConfig) -> Result<Arc<Session>, DatabaseError> {
        let id = NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed);
        let (jobs_tx, jobs_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let db = db.clone();
        std::thread::Builder::new()
            .name(format!("sqld-session-{id}"))
            .spawn(move || match db.connect() {
                Ok(conn) => {
                    let interrupt = Arc::new(Mutex::new(conn.get_interrupt_handle()));
                    let _ = ready_tx.send(Ok(interrupt.clone()));
                    worker::run(conn, db, jobs_rx, limits, interrupt);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .expect("spawning a session thread");
        let interrupt = ready_rx.await.expect("session thread reports readiness")?;
        Ok(Arc::new(Session {
            id,
            jobs: jobs_tx,
            interrupt,
        }))
    }
}

/// Runs `Query` requests on their session's connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct SchedulerService;

impl Service<Query> for SchedulerService {
    type Response = Response;
    type Error = SqlError;
    type Future = QueryFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, query: Query) -> Self::Future {
        let (reply, rx) = oneshot::channel();
        let cancelled = Arc::new(AtomicBool::new(false));
        let job = Job {
            request: query.request,
            reply,
            cancelled: cancelled.clone(),
        };
        let sent = query.session.jobs.send(job).is_ok();
        QueryFuture {
            rx: sent.then_some(rx),
            cancel_on_drop: CancelOnDrop {
                session: query.session,
                cancelled,
                armed: true,
            },
        }
    }
}

/// The reply to one `Query`; dropping it early interrupts the statement.
pub struct QueryFuture {
    rx: Option<oneshot::Receiver<Response>>,
    cancel_on_drop: CancelOnDrop,
}

struct CancelOnDrop {
    session: Arc<Session>,
    cancelled: Arc<AtomicBool>,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.cancelled.store(true, Ordering::SeqCst);
            if let Ok(handle) = self.session.interrupt.lock() {
                handle.interrupt();
            }
        }
    }
}

impl Future for QueryFuture {
    type Output = Result<Response, SqlError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(rx) = this.rx.as_mut() else {
            this.cancel_on_drop.armed = false;
            return Poll::Ready(Err(session_gone()));
        };
        match Pin::new(rx).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                this.cancel_on_drop.armed = false;
                Poll::Ready(result.map_err(|_| session_gone()))
            }
        }
    }
}

fn session_gone() -> SqlError {
    SqlError::new(
        sqlstate::INTERNAL_ERROR,
        "the session's database connection has stopped",
    )
}
