//! The tower stack every `Query` goes through:
//! tracing -> metrics -> `SchedulerService` (which also enforces the
//! statement timeout, from inside SQLite: see `scheduler`).
//!
//! Behaviour that applies to every statement lives here as layers, so the
//! protocol handlers and the scheduler each keep to their one job.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::util::BoxCloneSyncService;
use tower::{BoxError, Layer, Service, ServiceBuilder};
use tracing::Instrument;

use crate::error::SqlError;
use crate::metrics::METRICS;
use crate::query::{Outcome, Response};
use crate::scheduler::{Query, SchedulerService};

/// The type-erased stack the protocol handlers call.
pub type QueryStack = BoxCloneSyncService<Query, Response, BoxError>;

/// Builds the stack.
pub fn query_stack() -> QueryStack {
    let stack = ServiceBuilder::new()
        .layer(TraceLayer)
        .layer(MetricsLayer)
        .map_err(BoxError::from)
        .service(SchedulerService);
    BoxCloneSyncService::new(stack)
}

/// Turns what a layer may fail with into the error the client sees.
pub fn to_sql_error(e: BoxError) -> SqlError {
    match e.downcast::<SqlError>() {
        Ok(e) => *e,
        Err(e) => SqlError::new(crate::error::sqlstate::INTERNAL_ERROR, e.to_string()),
    }
}

/// Runs each request in a `query` span (session id and request kind), so
/// whatever is logged below it says which session it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct TraceLayer;

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct TraceService<S> {
    inner: S,
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
        let span = tracing::debug_span!(
            "query",
            session = query.session.id,
            kind = query.request.kind()
        );
        tracing::trace!(parent: &span, request = ?query.request, "request");
        self.inner.call(query).instrument(span)
    }
}

/// Counts statements by kind and outcome, errors by SQLSTATE class, and
/// observes latency.
#[derive(Debug, Clone, Copy)]
pub struct MetricsLayer;

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
}

impl<S> Service<Query> for MetricsService<S>
where
    S: Service<Query, Response = Response>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, query: Query) -> Self::Future {
        let kind = query.request.kind();
        let fut = self.inner.call(query);
        Box::pin(async move {
            let start = Instant::now();
            let result = fut.await.map_err(Into::into);
            METRICS
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
                                METRICS.record_statement(command, "ok");
                            }
                            Err(e) => METRICS.record_error(kind, e.class()),
                        }
                    }
                }
                Ok(_) => METRICS.record_statement(kind, "ok"),
                Err(e) => {
                    let class = match e.downcast_ref::<SqlError>() {
                        Some(e) => e.class(),
                        None => "57",
                    };
                    METRICS.record_error(kind, class);
                }
            }
            result
        })
    }
}
