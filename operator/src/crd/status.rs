//! `SqldCluster.status`: what the operator observed on its last reconcile.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a SqldCluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SqldClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Coarse summary for humans; read `conditions` in automation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// `Ready`, `PrimaryReady`, `ReplicasReady`, `BackendReady`,
    /// `MonitoringReady`, `BackupReady`, in `metav1.Condition` shape.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Replica pods that exist (the scale subresource's status path).
    #[serde(default)]
    pub replicas: i32,

    /// Replica pods that are ready (caught up within the lag bound).
    #[serde(default)]
    pub ready_replicas: i32,

    /// Label selector of the replica pods (the scale subresource's selector,
    /// used by an HPA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// Where clients connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,

    /// Image the primary currently runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_image: Option<String>,

    /// Continuous backup, as the primary's metrics report it (only with
    /// `spec.backup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupStatus>,
}

/// What the backup store holds, as far as the operator has seen.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// The destination these fields describe; they start over when
    /// `spec.backup.destination` changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,

    /// The newest frame the store holds (`sqld_backup_archived_frame_no`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_archived_frame: Option<i64>,

    /// Time of the primary's last successful upload
    /// (`sqld_backup_last_upload_timestamp_seconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_backup: Option<Time>,

    /// A point the store can certainly be restored to or after: the first
    /// successful upload the operator saw for this destination, moved up
    /// to now minus `retention` when that is later. Conservative: the store
    /// may reach further back (`sqld backup list` says exactly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_recoverability_point: Option<Time>,
}

/// Summary phase of a cluster.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Children are being created and are not ready yet.
    Provisioning,
    /// Every instance is ready.
    Ready,
    /// A spec change is rolling out (replicas first, the primary last).
    Upgrading,
    /// The primary serves but some replicas are not ready.
    Degraded,
    /// Reconciliation is paused by annotation.
    Paused,
    /// The spec cannot be realised; see the `Ready` condition.
    Failed,
}

/// DNS names clients use, inside the cluster.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// Read-write: the primary.
    pub rw: String,
    /// Read-only: the replicas (the primary when there are none).
    pub ro: String,
    /// Any instance.
    pub r: String,
    /// PostgreSQL protocol port.
    pub port: i32,
}
