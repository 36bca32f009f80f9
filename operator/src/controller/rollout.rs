//! Reading rollouts: whether a StatefulSet or Deployment has finished
//! rolling, and what an apply changed about it (for Events).

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};

use crate::naming;
use crate::status::PartState;

/// Whether the primary's update waits for the replicas, and whether their
/// rollout stopped progressing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Hold {
    pub wait: bool,
    /// `Progressing=False` when the replica Deployment passed its progress
    /// deadline.
    pub stalled: Option<PartState>,
}

/// Replicas roll before the primary, so a bad change meets a replica first.
/// The hold ends when the replicas finished, and also when holding cannot
/// help: the primary is down (the replicas may need the fixed primary to
/// become ready), the replication token changed (new replicas cannot
/// authenticate to the old primary: it goes first), or the replicas made no
/// progress within the Deployment's `progressDeadlineSeconds` for a reason
/// that says nothing about the change (its new pods wait for a node: the
/// primary is updated anyway, rather than a rollout that waits forever).
/// When new replica pods run the change and fail, the hold stays: the
/// change is what breaks them, and it would break the primary too. Either
/// way `stalled` says so, for a condition and a Warning.
///
/// `new_replica_pods`: the replica pods of the new template (only looked at
/// once the deadline passed).
pub fn primary_hold(
    live: Option<&StatefulSet>,
    desired: &StatefulSet,
    replicas: &Deployment,
    new_replica_pods: &[Pod],
) -> Hold {
    let stalled = progress_deadline_exceeded(replicas).then(|| {
        if new_replica_pods.iter().any(runs_but_fails) {
            PartState::not_ready(
                "ReplicaRolloutFailed",
                format!(
                    "new pods of Deployment {} run but do not become ready; the primary keeps its configuration until the replicas' is fixed or reverted",
                    name(&replicas.metadata)
                ),
            )
        } else {
            PartState::not_ready(
                "ReplicaRolloutStalled",
                format!(
                    "Deployment {} made no progress within its progress deadline (its new pods are not scheduled); the primary is not held back for it",
                    name(&replicas.metadata)
                ),
            )
        }
    });
    let change_suspect = stalled
        .as_ref()
        .is_some_and(|s| s.reason == "ReplicaRolloutFailed");
    let Some(live) = live else {
        return Hold {
            wait: false,
            stalled,
        };
    };
    let primary_ready = live
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
        >= 1;
    let token = |s: &StatefulSet| {
        s.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(naming::ANNOTATION_TOKEN_REVISION).cloned())
    };
    let token_rotating = matches!((token(live), token(desired)), (Some(a), Some(b)) if a != b);
    let wait = primary_ready
        && !token_rotating
        && (stalled.is_none() || change_suspect)
        && !deployment_settled(replicas);
    Hold { wait, stalled }
}

/// A pod that was scheduled (so its containers ran the new configuration)
/// and is not ready.
fn runs_but_fails(pod: &Pod) -> bool {
    let conds = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let is = |t: &str| conds.iter().any(|c| c.type_ == t && c.status == "True");
    is("PodScheduled") && !is("Ready")
}

/// Whether `pod` runs the pod template `t` (same config hash).
pub fn runs_template(pod: &Pod, t: &PodTemplateSpec) -> bool {
    let hash = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(naming::ANNOTATION_CONFIG_HASH));
    hash.is_some() && hash.cloned() == template_hash(t)
}

/// Whether the replica Deployment passed its progress deadline.
pub fn replicas_stalled(d: &Deployment) -> bool {
    progress_deadline_exceeded(d)
}

/// The Deployment controller's verdict that a rollout is stuck.
fn progress_deadline_exceeded(d: &Deployment) -> bool {
    d.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_.as_deref() == Some("Progressing")
                    && c.status.as_deref() == Some("False")
                    && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            })
        })
}

/// What an apply changed, as an Event's reason and note.
#[derive(Debug, PartialEq, Eq)]
pub struct Change {
    pub reason: &'static str,
    pub note: String,
}

/// How applying `desired` changes the replica Deployment `old`.
pub fn replica_change(old: Option<&Deployment>, desired: &Deployment) -> Option<Change> {
    let want = desired.spec.replicas.unwrap_or(0);
    let Some(old) = old else {
        return Some(Change {
            reason: "ReplicasCreated",
            note: format!(
                "created Deployment {} with {want} replicas",
                name(&desired.metadata)
            ),
        });
    };
    let had = old.spec.replicas.unwrap_or(0);
    if template_hash(&old.spec.template) != template_hash(&desired.spec.template) {
        Some(Change {
            reason: "ReplicasRolling",
            note: format!(
                "rolling Deployment {} to a new configuration",
                name(&desired.metadata)
            ),
        })
    } else if had != want {
        Some(Change {
            reason: "ReplicasScaled",
            note: format!(
                "scaled Deployment {} from {had} to {want}",
                name(&desired.metadata)
            ),
        })
    } else {
        None
    }
}

/// How applying `desired` changes the primary StatefulSet `old`.
pub fn primary_change(old: Option<&StatefulSet>, desired: &StatefulSet) -> Option<Change> {
    match old {
        None => Some(Change {
            reason: "PrimaryCreated",
            note: format!("created StatefulSet {}", name(&desired.metadata)),
        }),
        Some(old) if config_hash(old) != config_hash(desired) => Some(Change {
            reason: "PrimaryRolling",
            note: format!(
                "rolling StatefulSet {} to a new configuration",
                name(&desired.metadata)
            ),
        }),
        Some(_) => None,
    }
}

fn name(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    m.name.as_deref().unwrap_or("")
}

/// The config hash of a StatefulSet's pod template.
pub fn config_hash(sts: &StatefulSet) -> Option<String> {
    template_hash(&sts.spec.template)
}

fn template_hash(t: &PodTemplateSpec) -> Option<String> {
    t.metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(naming::ANNOTATION_CONFIG_HASH).cloned())
}

/// The Deployment runs its current template on every wanted pod, and no
/// old pod remains.
pub fn deployment_settled(d: &Deployment) -> bool {
    let want = d.spec.replicas.unwrap_or(1);
    let s = d.status.clone().unwrap_or_default();
    s.observed_generation >= d.metadata.generation
        && s.updated_replicas.unwrap_or(0) >= want
        && s.replicas.unwrap_or(0) == want
        && s.available_replicas.unwrap_or(0) >= want
}

/// The StatefulSet runs its current revision.
pub fn statefulset_settled(s: &StatefulSet) -> bool {
    let st = s.status.clone().unwrap_or_default();
    st.observed_generation >= s.metadata.generation
        && (st.update_revision.is_none() || st.current_revision == st.update_revision)
}
