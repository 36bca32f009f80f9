//! PodDisruptionBudgets. Only the replicas get one, and only when there are
//! at least two: it lets a drain evict one replica at a time. The primary
//! gets none on purpose: a budget over a single pod either allows its
//! eviction (pointless) or forbids it (a node drain that never finishes).
//! Unhealthy replicas are always evictable, so a crash-looping pod never
//! blocks a drain.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::SqldCluster;
use crate::naming::{self, Role};

/// Replicas needed before a budget means anything.
const MIN_REPLICAS_FOR_PDB: i32 = 2;

/// The replicas' budget, when there are enough replicas for one.
pub fn replica_pdb(c: &SqldCluster) -> Option<PodDisruptionBudget> {
    if c.spec.replicas < MIN_REPLICAS_FOR_PDB {
        return None;
    }
    Some(PodDisruptionBudget {
        metadata: naming::child_meta(
            c,
            naming::replica_name(c),
            naming::role_labels(c, Role::Replica),
        ),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(naming::role_label_selector(c, Role::Replica)),
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".to_string()),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    })
}
