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
    StatefulSet {
        metadata: naming::child_meta(
            c,
            naming::primary_name(c),
            naming::role_labels(c, Role::Primary),
        ),
        spec: StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(naming::headless_name(c)),
            selector: naming::role_label_selector(c, Role::Primary),
            template: pod::pod_template(c, Role::Primary, inputs),
            volume_claim_templates: local.then(|| vec![data_claim(c)]),
            // Deleting the cluster deletes its data too (owner references
            // everywhere); scaling never happens for a primary.
            persistent_volume_claim_retention_policy: local.then(|| {
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Delete".to_string()),
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
