//! One reconciliation of one SqldCluster: resolve references, apply every
//! child in dependency order, roll replicas before the primary, expand the
//! primary's volume, prune children no longer wanted, and write status.
//! The objects themselves come from `builders`; this file only orchestrates.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::ResourceExt;
use serde_json::json;

use super::apply::{apply, delete_owned, serves_kind};
use super::rollout::{self, config_hash, deployment_settled, statefulset_settled};
use super::{backup, references, repair, volume, Context};
use crate::backup_status;
use crate::builders::{self, foundationdb, monitoring, Inputs};
use crate::crd::{MonitorKind, SqldCluster, SqldClusterStatus};
use crate::error::{Error, Result};
use crate::naming::{self, FIELD_MANAGER};
use crate::status::{self, Observed, PartState};
use crate::validation::{self, Problem};

/// Requeue delays: soon while something is converging, rarely once settled
/// (owned objects' watch events trigger reconciles anyway).
const REQUEUE_CONVERGING: Duration = Duration::from_secs(10);
const REQUEUE_SETTLED: Duration = Duration::from_secs(300);
/// A spec problem waits for a fix; referenced Secrets are not watched, so
/// look again now and then.
const REQUEUE_PROBLEM: Duration = Duration::from_secs(60);

/// Reconciles one cluster.
pub async fn reconcile(c: Arc<SqldCluster>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.start();
    let result = reconcile_cluster(&c, &ctx).await;
    match &result {
        Ok(_) => ctx.reset_backoff(&c),
        Err(e) => {
            ctx.metrics.failure(e);
            tracing::warn!(cluster = %c.name_any(), error = %e, "reconcile failed");
            ctx.event(
                &c,
                EventType::Warning,
                "ReconcileError",
                "Reconcile",
                e.to_string(),
            )
            .await;
        }
    }
    result
}

async fn reconcile_cluster(c: &SqldCluster, ctx: &Context) -> Result<Action> {
    let ns = c
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let client = ctx.client.clone();
    if c.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the children.
        return Ok(Action::await_change());
    }
    if status::is_paused(c) {
        if c.status.as_ref().and_then(|s| s.phase) != Some(crate::crd::Phase::Paused) {
            patch_status(ctx, c, &ns, status::paused(c)).await?;
            ctx.event(
                c,
                EventType::Normal,
                "Paused",
                "Reconcile",
                format!(
                    "{} is set: the operator leaves this cluster alone",
                    naming::ANNOTATION_PAUSED
                ),
            )
            .await;
        }
        return Ok(Action::await_change());
    }

    let mut problems = validation::check(c);
    let mut external_revision = String::new();
    let mut token_revision = String::new();
    if problems.is_empty() {
        let resolved = references::resolve(c, ctx, &ns).await?;
        problems = resolved.problems;
        external_revision = resolved.external_revision;
        token_revision = resolved.token_revision;
    }
    if !problems.is_empty() {
        return fail(c, ctx, &ns, problems).await;
    }

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let old_replicas = deployments.get_opt(&naming::replica_name(c)).await?;
    let inputs = Inputs {
        external_revision,
        token_revision,
        ready_replicas: Some(
            old_replicas
                .as_ref()
                .and_then(|d| d.status.as_ref())
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0),
        ),
        credentials: None,
    };
    let desired = builders::children(c, &inputs);
    let mut obs = Observed::default();

    // Backend first: the pods mount its cluster file.
    if let Some(cm) = &desired.cluster_file {
        apply(&Api::<ConfigMap>::namespaced(client.clone(), &ns), cm).await?;
        obs.backend = Some(PartState::ready(
            "ClusterFileWritten",
            "cluster file written from connectionString",
        ));
    }
    if let Some(fdb) = &desired.fdb_cluster {
        let api = Api::<DynamicObject>::namespaced_with(
            client.clone(),
            &ns,
            &foundationdb::fdb_resource(),
        );
        let applied = apply(&api, fdb).await?;
        obs.backend = Some(fdb_state(&applied));
    }
    if c.spec
        .backend
        .foundationdb
        .as_ref()
        .is_some_and(|f| f.cluster_file.is_some())
    {
        obs.backend = Some(PartState::ready(
            "ClusterFileFound",
            "using an existing FoundationDB cluster",
        ));
    }

    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    for svc in [&desired.headless, &desired.rw, &desired.ro, &desired.r] {
        apply(&services, svc).await?;
    }
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
    match &desired.network_policy {
        Some(np) => drop(apply(&policies, np).await?),
        None => {
            delete_owned(
                &policies,
                &naming::network_policy_name(c),
                c.uid().as_deref(),
            )
            .await?
        }
    }

    // Replicas roll first; the primary follows once they are done.
    let replicas = apply(&deployments, &desired.replicas).await?;
    if let Some(change) = rollout::replica_change(old_replicas.as_ref(), &desired.replicas) {
        ctx.event(c, EventType::Normal, change.reason, "Apply", change.note)
            .await;
    }
    let replicas_settled = deployment_settled(&replicas);
    let rs = replicas.status.clone().unwrap_or_default();
    obs.replicas_current = rs.replicas.unwrap_or(0);
    obs.replicas_ready = rs.ready_replicas.unwrap_or(0);
    obs.replicas_updating = !replicas_settled;

    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let mut primary = desired.primary.clone();
    let existing = statefulsets.get_opt(&naming::primary_name(c)).await?;
    let volume = volume::reconcile(c, ctx, &ns, existing.as_ref(), &mut primary).await?;
    problems.extend(volume.problems);
    obs.storage = volume.state;
    let template_changed = existing
        .as_ref()
        .is_some_and(|old| config_hash(old) != config_hash(&primary));
    // Only a stalled rollout needs a look at its pods.
    let new_replica_pods = if rollout::replicas_stalled(&replicas) {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let selector = naming::role_selector_string(c, naming::Role::Replica);
        pods.list(&ListParams::default().labels(&selector))
            .await?
            .items
            .into_iter()
            .filter(|p| rollout::runs_template(p, &desired.replicas.spec.template))
            .collect()
    } else {
        Vec::new()
    };
    let hold = rollout::primary_hold(existing.as_ref(), &primary, &replicas, &new_replica_pods);
    if let Some(stalled) = &hold.stalled {
        if !had_condition_reason(c, status::PROGRESSING, &stalled.reason) {
            ctx.event(
                c,
                EventType::Warning,
                &stalled.reason,
                "Rollout",
                stalled.message.clone(),
            )
            .await;
        }
    }
    obs.stalled = hold.stalled;
    let hold_primary = template_changed && hold.wait;
    let primary = if hold_primary {
        tracing::info!(cluster = %c.name_any(), "primary update waits for the replicas to roll");
        existing.clone().unwrap_or(primary)
    } else {
        let applied = apply(&statefulsets, &primary).await?;
        if let Some(change) = rollout::primary_change(existing.as_ref(), &primary) {
            ctx.event(c, EventType::Normal, change.reason, "Apply", change.note)
                .await;
        }
        applied
    };
    let pod = repair::primary_pod(c, ctx, &ns).await?;
    if let (false, Some(pod)) = (hold_primary, &pod) {
        repair::replace_stale_primary_pod(c, ctx, &ns, &primary, pod).await?;
    }
    // What the primary runs, not what it was asked to run.
    obs.current_image = pod.as_ref().and_then(repair::running_image);
    let ps = primary.status.clone().unwrap_or_default();
    obs.primary_ready = ps.ready_replicas.unwrap_or(0) >= 1;
    if c.spec.backup.is_some() {
        let scrape = backup::scrape(ctx, obs.primary_ready, pod.as_ref()).await;
        let (state, status) = backup_status::observe(c, &scrape, Timestamp::now());
        obs.backup = Some(state);
        obs.backup_status = Some(status);
    }
    obs.primary_updating = hold_primary || !statefulset_settled(&primary);

    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
    match &desired.replica_pdb {
        Some(pdb) => drop(apply(&pdbs, pdb).await?),
        None => delete_owned(&pdbs, &naming::replica_name(c), c.uid().as_deref()).await?,
    }

    obs.monitoring = reconcile_monitor(c, ctx, &ns, desired.monitor.as_ref()).await?;
    obs.problems = problems;

    let now = Time(Timestamp::now());
    let new_status = status::compute(c, &obs, &now);
    let settled = new_status.phase == Some(crate::crd::Phase::Ready);
    let spec_changed =
        c.status.as_ref().and_then(|s| s.observed_generation) != c.metadata.generation;
    if spec_changed {
        let (reason, verb) = if c.status.is_none() {
            ("Created", "created")
        } else {
            ("Updated", "updated")
        };
        ctx.event(
            c,
            EventType::Normal,
            reason,
            "Apply",
            format!(
                "{verb} children for generation {}",
                c.metadata.generation.unwrap_or(0)
            ),
        )
        .await;
    }
    if c.status.as_ref() != Some(&new_status) {
        patch_status(ctx, c, &ns, new_status).await?;
    }
    Ok(Action::requeue(if settled {
        REQUEUE_SETTLED
    } else {
        REQUEUE_CONVERGING
    }))
}

/// Whether the last status had condition `type_` with `reason` (an Event
/// for it was already published).
fn had_condition_reason(c: &SqldCluster, type_: &str, reason: &str) -> bool {
    c.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|x| x.type_ == type_ && x.reason == reason)
    })
}

/// Reports a spec that cannot be realised: a Warning event and `Ready=False`
/// with the first problem's reason; the children stay as they are.
async fn fail(c: &SqldCluster, ctx: &Context, ns: &str, problems: Vec<Problem>) -> Result<Action> {
    let first = &problems[0];
    tracing::warn!(cluster = %c.name_any(), reason = first.reason, message = %first.message, "spec cannot be realised");
    ctx.event(
        c,
        EventType::Warning,
        first.reason,
        "Validate",
        first.message.clone(),
    )
    .await;
    let mut obs = observed_from_status(c);
    obs.problems = problems;
    let new_status = status::compute(c, &obs, &Time(Timestamp::now()));
    if c.status.as_ref() != Some(&new_status) {
        patch_status(ctx, c, ns, new_status).await?;
    }
    Ok(Action::requeue(REQUEUE_PROBLEM))
}

/// What the last status said, for a reconcile that looked at no children.
fn observed_from_status(c: &SqldCluster) -> Observed {
    let s = c.status.clone().unwrap_or_default();
    let was = |t: &str| {
        s.conditions
            .iter()
            .any(|x| x.type_ == t && x.status == "True")
    };
    // The optional parts keep what was last seen of them, so a failing
    // reconcile does not drop their conditions from the status.
    let part = |t: &str| {
        s.conditions
            .iter()
            .find(|x| x.type_ == t)
            .map(|x| PartState {
                ready: x.status == "True",
                reason: x.reason.clone(),
                message: x.message.clone(),
            })
    };
    Observed {
        primary_ready: was(status::PRIMARY_READY),
        replicas_current: s.replicas,
        replicas_ready: s.ready_replicas,
        backend: part(status::BACKEND_READY),
        monitoring: part(status::MONITORING_READY),
        storage: part(status::STORAGE_READY),
        stalled: part(status::PROGRESSING),
        backup: part(status::BACKUP_READY),
        current_image: s.current_image.clone(),
        ..Observed::default()
    }
}

/// Applies the wanted monitor (when its CRD is served) and deletes the
/// other kind, or both when monitoring is off.
async fn reconcile_monitor(
    c: &SqldCluster,
    ctx: &Context,
    ns: &str,
    wanted: Option<&DynamicObject>,
) -> Result<Option<PartState>> {
    let name = naming::monitor_name(c);
    let kinds = [MonitorKind::PodMonitor, MonitorKind::ServiceMonitor];
    let api = |k| {
        Api::<DynamicObject>::namespaced_with(
            ctx.client.clone(),
            ns,
            &monitoring::monitor_resource(k),
        )
    };
    let Some(obj) = wanted else {
        for k in kinds {
            delete_owned(&api(k), &name, c.uid().as_deref()).await?;
        }
        return Ok(None);
    };
    let kind = c.spec.monitoring.kind;
    let ar = monitoring::monitor_resource(kind);
    let gv = format!(
        "{}/{}",
        monitoring::MONITORING_GROUP,
        monitoring::MONITORING_VERSION
    );
    if !serves_kind(&ctx.client, &gv, &ar.kind).await? {
        return Ok(Some(PartState::not_ready(
            "CRDNotInstalled",
            format!(
                "{gv} {} is not served: install the Prometheus operator's CRDs",
                ar.kind
            ),
        )));
    }
    apply(&api(kind), obj).await?;
    for other in kinds.into_iter().filter(|k| *k != kind) {
        delete_owned(&api(other), &name, c.uid().as_deref()).await?;
    }
    Ok(Some(PartState::ready(
        "MonitorCreated",
        format!("{} {name} created", ar.kind),
    )))
}

/// BackendReady from a FoundationDBCluster's status.
fn fdb_state(obj: &DynamicObject) -> PartState {
    let available = obj
        .data
        .pointer("/status/health/available")
        .and_then(|v| v.as_bool());
    match available {
        Some(true) => PartState::ready(
            "FoundationDBAvailable",
            "the FoundationDB cluster is available",
        ),
        _ => PartState::not_ready(
            "FoundationDBNotAvailable",
            "waiting for the FoundationDB cluster to become available",
        ),
    }
}

async fn patch_status(
    ctx: &Context,
    c: &SqldCluster,
    ns: &str,
    status: SqldClusterStatus,
) -> Result<()> {
    let api: Api<SqldCluster> = Api::namespaced(ctx.client.clone(), ns);
    let body = json!({
        "apiVersion": format!("{}/{}", crate::crd::GROUP, crate::crd::VERSION),
        "kind": "SqldCluster",
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&c.name_any(), &params, &Patch::Apply(&body))
        .await?;
    Ok(())
}
