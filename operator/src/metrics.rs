//! Prometheus metrics of the operator itself, kept out of the reconcile
//! logic: the reconciler calls `start` and `failure`, nothing else.
//! Names carry the `sqld_operator_` prefix and base units.

use std::time::Instant;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::error::Error;

/// Reconcile durations, in seconds: most reconciles are a dozen API calls.
const DURATION_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The operator's metrics and the registry that exports them.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Reconciliations started.
    pub reconciliations: IntCounter,
    /// Failed reconciliations, by `Error::metric_label`.
    pub failures: IntCounterVec,
    /// Reconcile duration histogram.
    pub duration: HistogramVec,
    /// 1 while this process holds the leader lease.
    pub leader: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics in their own registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconciliations = IntCounter::with_opts(Opts::new(
            "sqld_operator_reconciliations_total",
            "Reconciliations started",
        ))
        .expect("valid metric");
        let failures = IntCounterVec::new(
            Opts::new(
                "sqld_operator_reconcile_failures_total",
                "Reconciliations that failed, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "sqld_operator_reconcile_duration_seconds",
                "Time spent in one reconciliation",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &[],
        )
        .expect("valid metric");
        let leader = IntGauge::new(
            "sqld_operator_leader",
            "1 while this instance holds the leader lease",
        )
        .expect("valid metric");
        for m in [
            Box::new(reconciliations.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(failures.clone()),
            Box::new(duration.clone()),
            Box::new(leader.clone()),
        ] {
            registry.register(m).expect("metric registered once");
        }
        Metrics {
            registry,
            reconciliations,
            failures,
            duration,
            leader,
        }
    }

    /// Counts a reconciliation and times it until the guard drops.
    pub fn start(&self) -> ReconcileTimer {
        self.reconciliations.inc();
        ReconcileTimer {
            start: Instant::now(),
            duration: self.duration.clone(),
        }
    }

    /// Counts a failed reconciliation.
    pub fn failure(&self, error: &Error) {
        self.failures
            .with_label_values(&[error.metric_label()])
            .inc();
    }

    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// Observes the reconcile duration when dropped.
pub struct ReconcileTimer {
    start: Instant,
    duration: HistogramVec,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.duration
            .with_label_values::<&str>(&[])
            .observe(self.start.elapsed().as_secs_f64());
    }
}
