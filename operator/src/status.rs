//! Turns what the reconciler observed into `SqldCluster.status`: conditions
//! in `metav1.Condition` shape, the phase, replica counts and endpoints.
//! Pure, so every combination is unit-tested without an API server.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;

use crate::crd::{Endpoints, Phase, SqldCluster, SqldClusterStatus};
use crate::naming::{self, Role};
use crate::validation::Problem;

/// Condition types.
pub const READY: &str = "Ready";
pub const PRIMARY_READY: &str = "PrimaryReady";
pub const REPLICAS_READY: &str = "ReplicasReady";
pub const BACKEND_READY: &str = "BackendReady";
pub const MONITORING_READY: &str = "MonitoringReady";
/// The primary's volume has the size the spec asks for (local backend).
pub const STORAGE_READY: &str = "StorageReady";
/// The rollout moves (False: the primary waited for replicas that stopped
/// progressing, and was rolled anyway).
pub const PROGRESSING: &str = "Progressing";
/// Continuous backup works (only with `spec.backup`).
pub const BACKUP_READY: &str = "BackupReady";

/// State of an optional part (backend, monitoring) as the reconciler saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartState {
    pub ready: bool,
    pub reason: String,
    pub message: String,
}

impl PartState {
    pub fn ready(reason: &str, message: impl Into<String>) -> Self {
        PartState {
            ready: true,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
    pub fn not_ready(reason: &str, message: impl Into<String>) -> Self {
        PartState {
            ready: false,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// What one reconcile found.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Why the spec cannot be realised (empty when it can).
    pub problems: Vec<Problem>,
    /// The primary pod is ready.
    pub primary_ready: bool,
    /// The primary is rolling to a new template, or waits for the replicas
    /// to finish theirs first.
    pub primary_updating: bool,
    /// Replica pods that exist and that are ready.
    pub replicas_current: i32,
    pub replicas_ready: i32,
    /// The replica Deployment is rolling to a new template.
    pub replicas_updating: bool,
    /// Backend state; `None` for the local backend (always ready).
    pub backend: Option<PartState>,
    /// Monitoring state; `None` when monitoring is disabled.
    pub monitoring: Option<PartState>,
    /// The primary's volume; `None` while it has no claim (or no volume).
    pub storage: Option<PartState>,
    /// Set when a rollout stopped progressing.
    pub stalled: Option<PartState>,
    /// Image of the primary's running template.
    pub current_image: Option<String>,
    /// Continuous backup; `None` without `spec.backup`.
    pub backup: Option<PartState>,
    pub backup_status: Option<crate::crd::BackupStatus>,
}

/// The status to write for `c`, keeping the transition time of conditions
/// whose status did not change.
pub fn compute(c: &SqldCluster, obs: &Observed, now: &Time) -> SqldClusterStatus {
    let old = c.status.clone().unwrap_or_default();
    let generation = c.metadata.generation;
    let desired = c.spec.replicas;
    let mut conds: Vec<Condition> = Vec::new();
    let mut set = |type_: &str, ok: bool, reason: &str, message: String| {
        conds.push(condition(
            &old.conditions,
            type_,
            ok,
            reason,
            message,
            generation,
            now,
        ));
    };

    let primary = if obs.primary_ready {
        ("PrimaryRunning", "the primary is ready".to_string())
    } else {
        (
            "PrimaryNotReady",
            "the primary pod is not ready".to_string(),
        )
    };
    set(PRIMARY_READY, obs.primary_ready, primary.0, primary.1);

    let replicas_ok = obs.replicas_ready >= desired;
    set(
        REPLICAS_READY,
        replicas_ok,
        if replicas_ok {
            "ReplicasRunning"
        } else {
            "ReplicasNotReady"
        },
        format!("{}/{} replicas ready", obs.replicas_ready, desired),
    );

    let backend = obs
        .backend
        .clone()
        .unwrap_or_else(|| PartState::ready("LocalStorage", "data lives on the primary's volume"));
    set(
        BACKEND_READY,
        backend.ready,
        &backend.reason,
        backend.message.clone(),
    );

    if let Some(m) = &obs.monitoring {
        set(MONITORING_READY, m.ready, &m.reason, m.message.clone());
    }
    // Storage does not gate Ready: a volume that cannot grow still serves.
    if let Some(m) = &obs.storage {
        set(STORAGE_READY, m.ready, &m.reason, m.message.clone());
    }
    if let Some(m) = &obs.stalled {
        set(PROGRESSING, m.ready, &m.reason, m.message.clone());
    }
    // Backup does not gate Ready either (the database serves without it),
    // but a problem in its settings shows here as well as on Ready.
    if c.spec.backup.is_some() {
        let own = obs.problems.iter().find(|p| is_backup_problem(p));
        let m = match (own, &obs.backup) {
            (Some(p), _) => PartState::not_ready(p.reason, p.message.clone()),
            (None, Some(m)) => m.clone(),
            (None, None) => PartState::not_ready("Pending", "not observed yet"),
        };
        set(BACKUP_READY, m.ready, &m.reason, m.message.clone());
    }

    let updating = obs.primary_updating || obs.replicas_updating;
    let (ready, reason, message) = if let Some(p) = obs.problems.first() {
        (false, p.reason, p.message.clone())
    } else if !obs.primary_ready {
        (
            false,
            "PrimaryNotReady",
            "the primary pod is not ready".to_string(),
        )
    } else if !backend.ready {
        (false, "BackendNotReady", backend.message.clone())
    } else if !replicas_ok {
        (
            false,
            "ReplicasNotReady",
            format!("{}/{} replicas ready", obs.replicas_ready, desired),
        )
    } else if updating {
        // Not ready until the new configuration runs everywhere, so
        // `kubectl wait --for=condition=Ready` after a change waits for it;
        // the phase (Upgrading) says the cluster serves meanwhile.
        (
            false,
            "RollingUpdate",
            "a new configuration is rolling out".to_string(),
        )
    } else {
        (true, "ClusterReady", "every instance is ready".to_string())
    };
    set(READY, ready, reason, message);

    let phase = if !obs.problems.is_empty() {
        Phase::Failed
    } else if updating && obs.primary_ready {
        Phase::Upgrading
    } else if !obs.primary_ready {
        match old.phase {
            None | Some(Phase::Provisioning) => Phase::Provisioning,
            _ => Phase::Degraded,
        }
    } else if !replicas_ok || !backend.ready {
        Phase::Degraded
    } else {
        Phase::Ready
    };

    // Ready first: `kubectl describe` shows conditions in list order.
    conds.sort_by_key(|c| (c.type_ != READY, c.type_.clone()));
    SqldClusterStatus {
        observed_generation: generation,
        phase: Some(phase),
        conditions: conds,
        replicas: obs.replicas_current,
        ready_replicas: obs.replicas_ready,
        selector: Some(naming::role_selector_string(c, Role::Replica)),
        endpoints: Some(endpoints(c)),
        current_image: obs.current_image.clone(),
        backup: c
            .spec
            .backup
            .as_ref()
            .and(obs.backup_status.clone().or(old.backup)),
    }
}

/// Whether a problem is about `spec.backup` (and so `BackupReady`'s too).
fn is_backup_problem(p: &Problem) -> bool {
    p.reason.starts_with("Backup") || p.reason == "RecoverySourceIsBackupDestination"
}

/// The status of a cluster whose reconciliation is paused: everything as it
/// was, plus the phase.
pub fn paused(c: &SqldCluster) -> SqldClusterStatus {
    let mut s = c.status.clone().unwrap_or_default();
    s.phase = Some(Phase::Paused);
    s
}

/// Client endpoints of a cluster.
pub fn endpoints(c: &SqldCluster) -> Endpoints {
    Endpoints {
        rw: naming::service_dns(c, &naming::rw_service_name(c)),
        ro: naming::service_dns(c, &naming::ro_service_name(c)),
        r: naming::service_dns(c, &naming::r_service_name(c)),
        port: naming::PG_PORT,
    }
}

fn condition(
    old: &[Condition],
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if ok { "True" } else { "False" }.to_string();
    let last_transition_time = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// Whether a cluster asked for its reconciliation to pause.
pub fn is_paused(c: &SqldCluster) -> bool {
    c.annotations()
        .get(naming::ANNOTATION_PAUSED)
        .is_some_and(|v| v == "true")
}
