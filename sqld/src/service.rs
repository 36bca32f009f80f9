//! A session as a tower service: every `Query` of one session goes through
//! its own stack, made when the session opens,
//! tracing -> metrics -> [activity] -> [offload] -> `SchedulerService`
//! (which runs it on the session's connection and enforces the statement
//! timeout from inside SQLite: see `scheduler`).
//!
//! Behaviour that applies to every statement lives here as layers, so the
//! protocol handlers and the scheduler each keep to their one job: the
//! span that says which session a log line belongs to, the statement
//! counters and latency, what `pg_stat_activity` shows of a client
//! session, and where the statement runs (inline on a client
//! connection's own thread, or on the blocking pool for callers on the
//! shared runtime). Errors are `SqlError`s all the way down.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceBuilder};
use tracing::Instrument;

use crate::activity::{SessionActivity, State};
use crate::error::{sqlstate, SqlError};
use crate::metrics::Metrics;
use crate::query::{Outcome, Request, Response, TxnState};
use crate::scheduler::{Query, SchedulerService, Session};

/// One session's stack, as the protocol handlers and the primary's remote
/// sessions call it.
pub type SessionStack = BoxCloneSyncService<Query, Response, SqlError>;

/// Where a session's statements run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On the calling thread: a client connection has a thread of its own.
    Inline,
    /// On the runtime's blocking pool: for callers on the shared runtime
    /// (the HTTP server running replicas' forwarded statements), which a
    /// statement blocking in SQLite must not stall.
    Blocking,
}

/// Builds `session`'s stack.
pub fn session_stack(session: Arc<Session>, placement: Placement) -> SessionStack {
    let stack = ServiceBuilder::new()
        .layer(TraceLayer {
            session: session.id,
        })
        .layer(MetricsLayer {
            metrics: session.metrics.clone(),
        })
        .option_layer(session.activity.clone().map(ActivityLayer))
        .option_layer((placement == Placement::Blocking).then_some(OffloadLayer))
        .service(SchedulerService::new(session));
    BoxCloneSyncService::new(stack)
}

/// Runs each request in a `query` span (session id and request kind), so
/// whatever is logged below it says which session it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct TraceLayer {
    session: u64,
}

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceService {
            inner,
            session: self.session,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TraceService<S> {
    inner: S,
    session: u64,
}

impl<S> Service<Query> for TraceService<S>
where
    S: Service<Query>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tracing::instrument::Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, query: Query) -> Self::Future {
        let span =
            tracing::debug_span!("query", session = self.session, kind = query.request.kind());
        tracing::trace!(parent: &span, request = ?query.request, "request");
        let _entered = span.enter();
        self.inner.call(query).instrument(span.clone())
    }
}

/// Counts statements by kind and outcome, errors by SQLSTATE class, and
/// observes latency.
#[derive(Clone)]
pub struct MetricsLayer {
    metrics: Arc<Metrics>,
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> Service<Query> for MetricsService<S>
where
    S: Service<Query, Response = Response, Error = SqlError>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = SqlError;
    type Future = Pin<Box<dyn Future<Output = Result<Response, SqlError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, query: Query) -> Self::Future {
        let kind = query.request.kind();
        let start = Instant::now();
        let fut = self.inner.call(query);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let result = fut.await;
            metrics
                .statement_duration
                .with_label_values(&[kind])
                .observe(start.elapsed().as_secs_f64());
            match &result {
                Ok(Response {
                    outcome: Outcome::Executed(results),
                    ..
                }) => {
                    for r in results {
                        match r {
                            Ok(r) => {
                                let command = r.tag.split(' ').next().unwrap_or("");
                                metrics.record_statement(command, "ok");
                            }
                            Err(e) => metrics.record_error(kind, e.class()),
                        }
                    }
                }
                Ok(_) => metrics.record_statement(kind, "ok"),
                Err(e) => metrics.record_error(kind, e.class()),
            }
            result
        })
    }
}

/// Keeps a client session's `pg_stat_activity` row current: `active` with
/// its text while a statement runs, then the state it left the session
/// in. A few atomic stores per statement (the text is copied only when it
/// changes); Prepare requests are not statements run and change nothing.
#[derive(Clone)]
pub struct ActivityLayer(Arc<SessionActivity>);

impl<S> Layer<S> for ActivityLayer {
    type Service = ActivityService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ActivityService {
            inner,
            activity: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ActivityService<S> {
    inner: S,
    activity: Arc<SessionActivity>,
}

/// The state a session is left in after a request.
fn state_after(result: &Result<Response, SqlError>) -> State {
    match result {
        Ok(Response {
            txn: TxnState::Active,
            ..
        }) => State::IdleInTransaction,
        Ok(Response {
            txn: TxnState::Failed,
            ..
        }) => State::IdleInTransactionAborted,
        _ => State::Idle,
    }
}

impl<S> Service<Query> for ActivityService<S>
where
    S: Service<Query, Response = Response, Error = SqlError>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = SqlError;
    type Future = Pin<Box<dyn Future<Output = Result<Response, SqlError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, query: Query) -> Self::Future {
        let Request::Execute { sql, .. } = &query.request else {
            return Box::pin(self.inner.call(query));
        };
        // Before the call: an inline statement runs inside it.
        self.activity.start(sql);
        let fut = self.inner.call(query);
        let activity = self.activity.clone();
        Box::pin(async move {
            let result = fut.await;
            activity.finish(state_after(&result));
            result
        })
    }
}

/// Runs the inner service's calls on the runtime's blocking pool, in the
/// caller's span.
#[derive(Debug, Clone, Copy)]
pub struct OffloadLayer;

impl<S> Layer<S> for OffloadLayer {
    type Service = OffloadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OffloadService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct OffloadService<S> {
    inner: S,
}

impl<S> Service<Query> for OffloadService<S>
where
    S: Service<Query, Response = Response, Error = SqlError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = SqlError;
    type Future = Pin<Box<dyn Future<Output = Result<Response, SqlError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, query: Query) -> Self::Future {
        // The service that was polled ready makes the call; a clone stays
        // for the next one (tower's contract).
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let span = tracing::Span::current();
        let running = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            ready.call(query)
        });
        Box::pin(async move {
            let call = running
                .await
                .map_err(|e| SqlError::new(sqlstate::INTERNAL_ERROR, e.to_string()))?;
            call.await
        })
    }
}
