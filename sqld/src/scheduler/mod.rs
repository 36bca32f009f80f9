//! `SchedulerService`: where a `Query` reaches libsql.
//!
//! Each client connection runs on a thread of its own (see `server`), and
//! its session's libsql connection lives there too: a request runs inline,
//! on the thread that read it from the socket, with no hand-off to another
//! thread and back. SQLite calls block, but only the one connection that
//! made them. Sessions run side by side: in WAL mode readers proceed
//! concurrently and writers queue at the database's write gate.
//!
//! A running statement is stopped by SQLite's progress handler when its
//! statement timeout passes, its client sends a CancelRequest or leaves,
//! its write transaction runs out of time, or the server shuts down
//! (`StatementGuard`).

mod upstream;
mod worker;

use std::future::{ready, Ready};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use tower::Service;

use crate::activity::SessionActivity;
use crate::database::{Database, DatabaseError};
use crate::error::{sqlstate, SqlError};
use crate::metrics::Metrics;
use crate::query::{Outcome, Request, Response};
use crate::shutdown::Shutdown;

pub use upstream::{ForwardStatement, Forwarded, Upstream};

/// What every session's worker is configured with.
#[derive(Clone)]
pub struct SessionConfig {
    /// A result set larger than this (in bytes of values) fails with 54000
    /// rather than exhausting the server's memory.
    pub max_result_bytes: usize,
    /// Statements running longer than this are canceled (57014), unless
    /// the session SETs its own `statement_timeout`.
    pub statement_timeout: Option<Duration>,
    /// A transaction holding the write lock longer is rolled back (25P04).
    pub write_transaction_timeout: Option<Duration>,
    /// On a replica: the primary, to forward writes to and wait for.
    pub upstream: Option<Arc<dyn Upstream>>,
    /// The session speaks the SQLite API dialect (see `pg::sqlite_api`).
    pub sqlite_api: bool,
    /// Running statements are interrupted (57P01) once this fires.
    pub shutdown: Option<Shutdown>,
    /// A client session's entry in `pg_stat_activity` (none for the
    /// primary's sessions of replicas' forwarded transactions); its pid is
    /// what `pg_backend_pid()` answers.
    pub activity: Option<Arc<SessionActivity>>,
}

/// One request for a session's database connection, as its stack
/// (`service::session_stack`) carries it.
pub struct Query {
    pub request: Request,
    /// Resolves if the client sends a CancelRequest while this runs.
    pub cancel: Option<futures::channel::oneshot::Receiver<()>>,
    /// A limit for this request alone, when tighter than the session's
    /// statement timeout: what is left of a replica session's statement
    /// timeout when it forwards the statement here.
    pub timeout: Option<Duration>,
}

/// One client session: its libsql connection and what it has going on.
/// Dropping the last handle closes the connection (rolling back any open
/// transaction).
pub struct Session {
    pub id: u64,
    worker: Mutex<worker::Worker>,
    guard: Arc<StatementGuard>,
    /// The server's metrics, which the session's stack records into.
    pub metrics: Arc<Metrics>,
    /// What `pg_stat_activity` shows of it, which its stack keeps current.
    pub activity: Option<Arc<SessionActivity>>,
}

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

impl Session {
    /// Opens a libsql connection for a new session, on the calling thread.
    pub fn open(db: &Database, config: SessionConfig) -> Result<Arc<Session>, DatabaseError> {
        let id = NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed);
        let guard = Arc::new(StatementGuard {
            shutdown: config.shutdown.clone(),
            ..StatementGuard::default()
        });
        let activity = config.activity.clone();
        let worker = worker::Worker::new(db.clone(), config, guard.clone())?;
        Ok(Arc::new(Session {
            id,
            worker: Mutex::new(worker),
            guard,
            metrics: db.metrics().clone(),
            activity,
        }))
    }

    /// Stops this session's statements when the client at `socket`
    /// disconnects (checked while they run, as Postgres'
    /// `client_connection_check_interval` does).
    pub fn watch_client(&self, socket: std::os::fd::RawFd) {
        let _ = self.guard.client.set(socket);
    }

    /// When the write transaction this session holds must end, if it holds
    /// one: the connection closes a session idle past it.
    pub fn write_deadline(&self) -> Option<Instant> {
        *lock(&self.guard.write_deadline)
    }

    /// Runs one request to completion; `cancel` resolves if the client
    /// asks to cancel it.
    fn run(&self, query: Query) -> Response {
        // A poisoned lock means a request panicked; the connection and its
        // transaction state are still consistent enough to roll back.
        let mut worker = self.worker.lock().unwrap_or_else(|p| p.into_inner());
        let timeout = match (query.timeout, worker.statement_timeout()) {
            (Some(request), Some(session)) => Some(request.min(session)),
            (request, session) => request.or(session),
        };
        self.guard.arm(timeout, query.cancel);
        // The write transaction ran out of time between statements.
        if self.guard.write_deadline_passed() {
            worker.abort_transaction();
            let stopped = self.guard.disarm();
            return Response {
                outcome: Outcome::Executed(vec![Err(
                    stopped.unwrap_or_else(SqlError::write_transaction_timeout)
                )]),
                txn: worker.txn(),
            };
        }
        let mut response = worker.handle(query.request);
        let stopped_by = self.guard.disarm();
        if stopped_by
            .as_ref()
            .is_some_and(|e| e.code == sqlstate::TRANSACTION_TIMEOUT)
        {
            worker.abort_transaction();
            response.txn = worker.txn();
        }
        if let (Some(stop), Outcome::Executed(results)) = (stopped_by, &mut response.outcome) {
            for result in results.iter_mut() {
                if let Err(e) = result {
                    if e.code == sqlstate::QUERY_CANCELED {
                        *e = stop.clone();
                    }
                }
            }
        }
        response
    }
}

/// A session as the innermost service of its stack: runs each `Query` on
/// the session's connection, inline, on the calling thread.
#[derive(Clone)]
pub struct SchedulerService {
    session: Arc<Session>,
}

impl SchedulerService {
    pub fn new(session: Arc<Session>) -> Self {
        SchedulerService { session }
    }
}

impl Service<Query> for SchedulerService {
    type Response = Response;
    type Error = SqlError;
    type Future = Ready<Result<Response, SqlError>>;

    /// A session takes no new request once the server is shutting down.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match &self.session.guard.shutdown {
            Some(shutdown) if shutdown.is_shutdown() => {
                Poll::Ready(Err(SqlError::admin_shutdown()))
            }
            _ => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, query: Query) -> Self::Future {
        ready(Ok(self.session.run(query)))
    }
}

/// How often a running statement checks that its client is still there.
const CLIENT_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// What may stop the statement running now: its deadline, its client's
/// CancelRequest, the deadline of the write transaction it runs in, its
/// client going away, and server shutdown. SQLite's progress handler asks, every few
/// hundred virtual-machine steps, on the session's own thread.
#[derive(Default)]
pub struct StatementGuard {
    deadline: Mutex<Option<Instant>>,
    cancel: Mutex<Option<oneshot::Receiver<()>>>,
    timed_out: AtomicBool,
    cancelled: AtomicBool,
    /// Set while the session holds the write gate (see `Worker`); it
    /// outlives requests, unlike the statement's own deadline.
    write_deadline: Mutex<Option<Instant>>,
    write_timed_out: AtomicBool,
    /// The client's socket, polled for a hang-up.
    client: std::sync::OnceLock<std::os::fd::RawFd>,
    client_checked: Mutex<Option<Instant>>,
    client_gone: AtomicBool,
    shutdown: Option<Shutdown>,
    shut_down: AtomicBool,
}

impl StatementGuard {
    fn arm(&self, timeout: Option<Duration>, cancel: Option<oneshot::Receiver<()>>) {
        *lock(&self.deadline) = timeout.map(|t| Instant::now() + t);
        *lock(&self.cancel) = cancel;
        self.timed_out.store(false, Ordering::SeqCst);
        self.cancelled.store(false, Ordering::SeqCst);
        self.write_timed_out.store(false, Ordering::SeqCst);
    }

    /// Ends a request: the error it was stopped with, if it was.
    fn disarm(&self) -> Option<SqlError> {
        *lock(&self.deadline) = None;
        *lock(&self.cancel) = None;
        if self.shut_down.load(Ordering::SeqCst) {
            Some(SqlError::admin_shutdown())
        } else if self.write_timed_out.load(Ordering::SeqCst) {
            Some(SqlError::write_transaction_timeout())
        } else if self.client_gone.load(Ordering::SeqCst) {
            Some(SqlError::client_disconnected())
        } else if self.timed_out.load(Ordering::SeqCst) {
            Some(SqlError::statement_timeout())
        } else if self.cancelled.load(Ordering::SeqCst) {
            Some(SqlError::canceled())
        } else {
            None
        }
    }

    /// What is left of the running request's statement timeout, if it has
    /// one.
    pub fn remaining(&self) -> Option<Duration> {
        lock(&self.deadline).map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// The session took the write gate: its transaction must end by
    /// `deadline`.
    pub fn limit_write_transaction(&self, deadline: Option<Instant>) {
        *lock(&self.write_deadline) = deadline;
    }

    /// The session released the write gate.
    pub fn end_write_transaction(&self) {
        self.limit_write_transaction(None);
    }

    /// Whether the write transaction's deadline has passed (checked after
    /// a request, so the transaction is rolled back even if no statement
    /// was running when it passed).
    fn write_deadline_passed(&self) -> bool {
        let passed = lock(&self.write_deadline).is_some_and(|d| Instant::now() >= d);
        if passed {
            self.write_timed_out.store(true, Ordering::SeqCst);
        }
        passed
    }

    /// True when the running statement must stop (the progress handler
    /// then makes SQLite return SQLITE_INTERRUPT).
    pub fn should_stop(&self) -> bool {
        if self.timed_out.load(Ordering::Relaxed)
            || self.cancelled.load(Ordering::Relaxed)
            || self.write_timed_out.load(Ordering::Relaxed)
            || self.client_gone.load(Ordering::Relaxed)
            || self.shut_down.load(Ordering::Relaxed)
        {
            return true;
        }
        // Shutdown interrupts statements, as Postgres' fast shutdown does:
        // one that never ends must not hold the process for the whole
        // grace period.
        if self.shutdown.as_ref().is_some_and(Shutdown::is_shutdown) {
            self.shut_down.store(true, Ordering::SeqCst);
            return true;
        }
        let now = Instant::now();
        if lock(&self.deadline).is_some_and(|d| now >= d) {
            self.timed_out.store(true, Ordering::SeqCst);
            return true;
        }
        if self.write_deadline_passed() {
            return true;
        }
        if let Some(rx) = lock(&self.cancel).as_mut() {
            if matches!(rx.try_recv(), Ok(Some(()))) {
                self.cancelled.store(true, Ordering::SeqCst);
                return true;
            }
        }
        if self.client_hung_up(now) {
            self.client_gone.store(true, Ordering::SeqCst);
            return true;
        }
        false
    }

    /// Polls the client's socket for a hang-up, at most once per
    /// `CLIENT_CHECK_INTERVAL`.
    fn client_hung_up(&self, now: Instant) -> bool {
        let Some(&fd) = self.client.get() else {
            return false;
        };
        {
            let mut checked = lock(&self.client_checked);
            match *checked {
                Some(at) if now.duration_since(at) < CLIENT_CHECK_INTERVAL => return false,
                _ => *checked = Some(now),
            }
        }
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout; the socket outlives the
        // session (both belong to the connection).
        let ready = unsafe { libc::poll(&mut poll, 1, 0) };
        ready > 0 && poll.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_stops_on_its_deadline_and_on_a_cancel_request() {
        let guard = StatementGuard::default();
        guard.arm(None, None);
        assert!(!guard.should_stop());
        assert!(guard.disarm().is_none());

        guard.arm(Some(Duration::from_millis(10)), None);
        assert!(!guard.should_stop());
        std::thread::sleep(Duration::from_millis(20));
        assert!(guard.should_stop());
        assert_eq!(
            guard.disarm().unwrap().message,
            SqlError::statement_timeout().message
        );

        let (tx, rx) = oneshot::channel();
        guard.arm(Some(Duration::from_secs(60)), Some(rx));
        assert!(!guard.should_stop());
        tx.send(()).unwrap();
        assert!(guard.should_stop());
        assert_eq!(
            guard.disarm().unwrap().message,
            SqlError::canceled().message
        );

        // A new request starts clean.
        guard.arm(None, None);
        assert!(!guard.should_stop());
    }
}
