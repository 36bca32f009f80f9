//! Reading rollouts: whether a StatefulSet or Deployment has finished
//! rolling, and what an apply changed about it (for Events).

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::naming;

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
