//! The controller: watches SqldClusters and the children they own, and runs
//! `reconcile` for each cluster that changed, with exponential backoff on
//! errors. `run` wires it to leader election, the health and metrics
//! endpoint, and graceful shutdown.

mod apply;
mod backup;
mod reconcile;
mod references;
mod repair;
mod rollout;
mod volume;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::future::Future;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

pub use apply::{is_conflict, is_not_found};
pub use reconcile::reconcile;
pub use rollout::{
    deployment_settled, primary_change, primary_hold, replica_change, statefulset_settled, Change,
    Hold,
};

use crate::crd::SqldCluster;
use crate::error::{Error, Result};
use crate::http::{self, HealthState};
use crate::leader::LeaderElector;
use crate::metrics::Metrics;
use crate::naming::{FIELD_MANAGER, LABEL_MANAGED_BY};
use crate::telemetry::LogFormat;

/// First and longest retry delay after a failed reconcile.
const BACKOFF_BASE: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Options of `sqld-operator run`.
#[derive(clap::Args, Clone, Debug)]
pub struct RunOptions {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "SQLD_OPERATOR_NAMESPACE")]
    pub namespace: Option<String>,
    /// Address of the /metrics, /healthz and /readyz endpoint.
    #[arg(
        long,
        env = "SQLD_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, env = "SQLD_OPERATOR_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Elect a leader among operator replicas on a Lease.
    #[arg(long, env = "SQLD_OPERATOR_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the leader Lease.
    #[arg(
        long,
        env = "SQLD_OPERATOR_LEASE_NAME",
        default_value = "sqld-operator-leader"
    )]
    pub lease_name: String,
    /// Namespace of the leader Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "sqld-system")]
    pub lease_namespace: String,
    /// This instance's identity in the Lease.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
}

/// Shared state of every reconcile.
pub struct Context {
    pub client: Client,
    /// Publishes Events on SqldClusters.
    pub recorder: Recorder,
    pub metrics: Metrics,
    /// Port of sqld's HTTP listener on the pods, where the operator reads
    /// the primary's `/metrics` (tests point it elsewhere).
    pub sqld_http_port: u16,
    /// Consecutive failures per cluster (namespace/name), for backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(client: Client, metrics: Metrics, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_string(),
            instance,
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            sqld_http_port: crate::naming::HTTP_PORT as u16,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes an Event on a cluster. Events are best effort: failing to
    /// record one must not fail the reconcile.
    pub async fn event(
        &self,
        c: &SqldCluster,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &c.object_ref(&())).await {
            tracing::debug!(error = %e, "could not publish event");
        }
    }

    fn key(c: &SqldCluster) -> String {
        format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any())
    }

    fn reset_backoff(&self, c: &SqldCluster) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(&Self::key(c));
        }
    }

    /// The next retry delay for a cluster that just failed: 5s, 10s, 20s...
    /// up to 5 minutes.
    pub fn next_backoff(&self, c: &SqldCluster) -> Duration {
        let n = match self.failures.lock() {
            Ok(mut f) => {
                let n = f.entry(Self::key(c)).or_insert(0);
                *n = n.saturating_add(1);
                *n
            }
            Err(_) => 1,
        };
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
        BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
    }
}

/// What the controller does after a failed reconcile.
pub fn error_policy(c: Arc<SqldCluster>, _error: &Error, ctx: Arc<Context>) -> Action {
    Action::requeue(ctx.next_backoff(&c))
}

/// Runs the operator until SIGTERM/SIGINT or loss of leadership.
pub async fn run(opts: RunOptions) -> Result<()> {
    let client = Client::try_default().await?;
    run_with(client, opts, shutdown_signal()).await
}

/// Runs the operator with `client` until `shutdown` completes or leadership
/// is lost.
pub async fn run_with(
    client: Client,
    opts: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let shutdown = shutdown.boxed().shared();
    let metrics = Metrics::new();
    let ready = Arc::new(AtomicBool::new(false));
    let health = HealthState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let addr = opts.metrics_addr;
    tokio::spawn(async move {
        if let Err(e) = http::serve(addr, health).await {
            tracing::error!(error = %e, %addr, "metrics endpoint failed");
        }
    });
    // Fail fast on a wrong kubeconfig or missing CRD, before waiting for a lease.
    client.apiserver_version().await?;
    ready.store(true, Ordering::Relaxed);

    let identity = opts
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("sqld-operator-{}", std::process::id()));
    let elector = opts.leader_elect.then(|| {
        LeaderElector::new(
            client.clone(),
            &opts.lease_namespace,
            &opts.lease_name,
            &identity,
        )
    });
    if let Some(e) = &elector {
        tracing::info!(%identity, lease = %opts.lease_name, "waiting for leadership");
        tokio::select! {
            r = e.acquire() => r?,
            _ = shutdown.clone() => return Ok(()),
        }
        tracing::info!(%identity, "became leader");
    }
    metrics.leader.set(1);

    let ctx = Arc::new(Context::new(
        client.clone(),
        metrics.clone(),
        Some(identity),
    ));
    let controller = controller(client, opts.namespace.as_deref())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(cluster = %obj.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile error"),
            }
        });
    let outcome = match &elector {
        Some(e) => tokio::select! {
            _ = controller => Ok(()),
            lost = e.hold() => Err(lost),
        },
        None => {
            controller.await;
            Ok(())
        }
    };
    metrics.leader.set(0);
    if let Some(e) = &elector {
        e.release().await;
    }
    tracing::info!("stopped");
    outcome
}

/// The controller: SqldClusters plus the children it owns (only those this
/// operator labels, so it never caches unrelated objects).
fn controller(client: Client, namespace: Option<&str>) -> Controller<SqldCluster> {
    fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let owned = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={FIELD_MANAGER}"));
    Controller::new(
        api::<SqldCluster>(&client, namespace),
        watcher::Config::default(),
    )
    .owns(api::<StatefulSet>(&client, namespace), owned.clone())
    .owns(api::<Deployment>(&client, namespace), owned.clone())
    .owns(api::<Service>(&client, namespace), owned.clone())
    .owns(api::<PodDisruptionBudget>(&client, namespace), owned)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
