//! The primary: a StatefulSet of exactly one pod. A StatefulSet (not a
//! Deployment) because it never runs two primaries at once during a roll,
//! gives the pod a stable DNS name replicas can follow, and owns the volume
//! claim of the local backend.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{pod, Inputs};
use crate::crd::{BackendType, SqldCluster};
use crate::naming::{self, Role};

/// The primary StatefulSet.
pub fn primary_statefulset(c: &SqldCluster, inputs: &Inputs) -> StatefulSet {
    let local = c.spec.backend.type_ == BackendType::Local;
    let mut metadata = naming::child_meta(
        c,
        naming::primary_name(c),
        naming::role_labels(c, Role::Primary),
    );
    if !inputs.token_revision.is_empty() {
        metadata.annotations = Some(BTreeMap::from([(
            naming::ANNOTATION_TOKEN_REVISION.to_string(),
            inputs.token_revision.clone(),
        )]));
    }
    StatefulSet {
        metadata,
        spec: StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(naming::headless_name(c)),
            selector: naming::role_label_selector(c, Role::Primary),
            template: pod::pod_template(c, Role::Primary, inputs),
            volume_claim_templates: local.then(|| vec![data_claim(c)]),
            // The claim outlives the StatefulSet: deleting it (a repair, a
            // GitOps prune) must not delete the data, or the operator would
            // recreate an empty primary with a new log. The claim's lifetime
            // follows the SqldCluster instead, as `storage.reclaimPolicy`
            // says (the reconciler sets the claim's owner reference).
            persistent_volume_claim_retention_policy: local.then(|| {
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".to_string()),
                    when_scaled: Some("Retain".to_string()),
                }
            }),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".to_string()),
                ..StatefulSetUpdateStrategy::default()
            }),
            revision_history_limit: Some(3),
            ..StatefulSetSpec::default()
        },
        status: None,
    }
}

/// The volume claim template of the primary's data.
fn data_claim(c: &SqldCluster) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(naming::DATA_VOLUME.to_string()),
            labels: Some(naming::role_labels(c, Role::Primary)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            storage_class_name: c.spec.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(c.spec.storage.size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}
