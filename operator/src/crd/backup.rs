//! `SqldCluster.spec.backup` and `spec.bootstrap`: continuous backup of the
//! primary to object storage, and creating a cluster from such a backup.
//!
//! sqld does the work (`--backup-url` on the primary, `sqld restore` before
//! it first starts); the operator only passes the settings and the
//! credentials, which reach the pods through `secretKeyRef`.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// URL schemes sqld's backup store understands.
pub const BACKUP_SCHEMES: &[&str] = &["s3://", "file://"];

/// Continuous backup of the primary (only the primary archives; replicas
/// hold its frames).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// Where to archive: `s3://bucket/prefix` (S3 or an S3-compatible store)
    /// or `file:///path` (a directory inside the pod, for tests).
    #[schemars(regex(pattern = r"^(s3://[^/]+.*|file:///.*)$"))]
    pub destination: String,

    /// Credentials and endpoint of the store; absent for `file://` or when
    /// the pod gets them otherwise (an IAM role for service accounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<StoreCredentials>,

    /// Upload committed frames at least this often (sqld's
    /// `--backup-interval`, default 1s), e.g. `1s`, `500ms`, `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h|d))+$"))]
    pub interval: Option<String>,

    /// Upload a snapshot (a new generation) after this many frames (sqld's
    /// `--backup-generation-frames`, default 100000): fewer frames mean
    /// faster restores and more storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub generation_frames: Option<i64>,

    /// Keep what is needed to restore to any point this far back, e.g. `7d`
    /// (sqld's `--backup-retention`); everything is kept when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h|d))+$"))]
    pub retention: Option<String>,
}

/// A Secret with the store's access keys (they become AWS_ACCESS_KEY_ID and
/// AWS_SECRET_ACCESS_KEY), and the store's endpoint settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoreCredentials {
    /// Name of the Secret (in the cluster's namespace).
    #[schemars(length(min = 1))]
    pub secret_name: String,

    /// Key of the access key id in the Secret.
    #[serde(default = "default_access_key_id_key")]
    pub access_key_id_key: String,

    /// Key of the secret access key in the Secret.
    #[serde(default = "default_secret_access_key_key")]
    pub secret_access_key_key: String,

    /// Endpoint of an S3-compatible store, e.g. `http://minio.storage:9000`
    /// (AWS_ENDPOINT_URL); AWS itself when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://.+$"))]
    pub endpoint: Option<String>,

    /// Region of the bucket (AWS_REGION).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,

    /// Allow a plain-http endpoint (AWS_ALLOW_HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_http: Option<bool>,
}

fn default_access_key_id_key() -> String {
    "accessKeyId".to_string()
}

fn default_secret_access_key_key() -> String {
    "secretAccessKey".to_string()
}

/// How a new cluster starts. Applies only while the primary's volume holds
/// no database: an existing one is never overwritten.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self == oldSelf").message("bootstrap is immutable: it only applies when the cluster is created"))]
pub struct BootstrapSpec {
    /// Restore the primary's database from a backup before it first starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoverySpec>,
}

/// A backup to restore (`sqld restore`): the latest point, or the last
/// commit at or before `toTime` or `toFrame`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.toTime) && has(self.toFrame))").message("set at most one of toTime, toFrame"))]
pub struct RecoverySpec {
    /// The backup store to restore from (as `backup.destination`). It must
    /// differ from this cluster's own `backup.destination`: the new primary
    /// begins a new log, and mixing it into the source would confuse both.
    #[schemars(regex(pattern = r"^(s3://[^/]+.*|file:///.*)$"))]
    pub source: String,

    /// Credentials and endpoint of the source store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<StoreCredentials>,

    /// Restore the last commit at or before this time (RFC 3339, e.g.
    /// `2026-12-02T01:30:00Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_time: Option<String>,

    /// Restore the last commit at or before this frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub to_frame: Option<i64>,
}

/// Whether a store URL has a scheme sqld's backup store supports.
pub fn supported_store_url(url: &str) -> bool {
    BACKUP_SCHEMES
        .iter()
        .any(|s| url.strip_prefix(s).is_some_and(|rest| !rest.is_empty()))
}

/// Two store URLs naming the same place (a trailing `/` does not matter).
pub fn same_store(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}
