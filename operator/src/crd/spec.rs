//! `SqldCluster.spec`: the desired state of one sqld deployment.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, LocalObjectReference, ResourceRequirements, Toleration,
    TopologySpreadConstraint,
};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{BackendSpec, BackupSpec, BootstrapSpec, SqldClusterStatus, DEFAULT_IMAGE};

/// A sqld cluster: one primary (StatefulSet) and `replicas` read replicas
/// (Deployment) that replicate from it, with Services for read-write,
/// read-only and any-instance traffic.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sqld.dev",
    version = "v1alpha1",
    kind = "SqldCluster",
    namespaced,
    shortname = "sqld",
    category = "all",
    status = "SqldClusterStatus",
    derive = "PartialEq",
    doc = "A sqld cluster: a primary and read replicas serving the SQLite dialect over the PostgreSQL protocol.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas", description = "Desired read replicas"),
    printcolumn(name = "Ready Replicas", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 44").message("metadata.name must be at most 44 characters so every child object name fits"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name must be a DNS-1035 label (lower-case letters, digits and '-', starting with a letter, ending with a letter or digit), as the Service names made from it must be"),
    validation = Rule::new("!has(self.spec.auth) || self.spec.auth.method != 'cleartext' || has(self.spec.tls)").message("auth.method cleartext requires tls"),
)]
#[serde(rename_all = "camelCase")]
pub struct SqldClusterSpec {
    /// Container image of sqld. Defaulted on creation and then kept, so an
    /// operator upgrade does not change the image of an existing cluster.
    #[serde(default = "default_image")]
    #[schemars(length(min = 1))]
    pub image: String,

    /// Pull policy for the sqld image (Always, IfNotPresent, Never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,

    /// Secrets used to pull the sqld image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// Number of read replicas (0 means a primary only). The scale
    /// subresource points here, so `kubectl scale` and an HPA can change it;
    /// scaling never restarts the primary.
    #[serde(default)]
    #[schemars(range(min = 0, max = 64))]
    pub replicas: i32,

    /// Persistent storage of the primary.
    #[serde(default)]
    pub storage: StorageSpec,

    /// Resources of every sqld container, unless overridden per role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Resources of the primary; replaces `resources` for it when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_resources: Option<ResourceRequirements>,

    /// Resources of each replica; replaces `resources` for them when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_resources: Option<ResourceRequirements>,

    /// Client authentication and the replication token.
    #[serde(default)]
    pub auth: AuthSpec,

    /// TLS for client connections. Plain connections only when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,

    /// Where the durable state lives.
    #[serde(default)]
    pub backend: BackendSpec,

    /// How replicas follow the primary.
    #[serde(default)]
    pub replication: ReplicationSpec,

    /// Continuous backup of the primary to object storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,

    /// How a new cluster starts (e.g. restored from a backup). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<BootstrapSpec>,

    /// Prometheus operator integration.
    #[serde(default)]
    pub monitoring: MonitoringSpec,

    /// Who may reach the sqld pods (a NetworkPolicy named after the
    /// cluster).
    #[serde(default)]
    pub network_policy: NetworkPolicySpec,

    /// Node labels every sqld pod must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Tolerations of every sqld pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Affinity of every sqld pod. When absent, a preferred pod anti-affinity
    /// spreads the instances of the cluster across nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Topology spread constraints of every sqld pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,

    /// Priority class of every sqld pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,

    /// Extra labels on every sqld pod (the operator's own labels win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,

    /// Extra annotations on every sqld pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,

    /// Seconds a pod has to shut down after SIGTERM before it is killed.
    #[serde(default = "default_grace_period")]
    #[schemars(range(min = 10, max = 3600))]
    pub termination_grace_period_seconds: i64,

    /// Extra command-line arguments appended to sqld's (escape hatch).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,

    /// Extra environment variables of the sqld container (escape hatch).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
}

fn default_image() -> String {
    DEFAULT_IMAGE.to_string()
}

fn default_grace_period() -> i64 {
    30
}

/// Image pull policy.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// The primary's volume. Its size may grow (the operator expands the
/// PersistentVolumeClaim; the storage class must allow expansion) but never
/// shrink; the storage class is fixed at creation. With the FoundationDB
/// backend the primary's disk is a cache: `size` bounds an emptyDir instead.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("isQuantity(self.size)").message("storage.size must be a quantity such as 10Gi"),
    validation = Rule::new("!isQuantity(self.size) || !isQuantity(oldSelf.size) || quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0").message("storage.size may grow but not shrink"),
    validation = Rule::new("has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)").message("storage.storageClassName is immutable")
)]
pub struct StorageSpec {
    /// Requested size of the volume (a Kubernetes quantity, e.g. 10Gi).
    #[serde(default = "default_storage_size")]
    pub size: String,

    /// Storage class of the volume; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,

    /// What deleting the SqldCluster does to the primary's volume claim:
    /// `Retain` (the default) keeps it, and a cluster created again with
    /// the same name finds its data; `Delete` removes it with the cluster.
    /// Deleting only the StatefulSet (a repair, a prune) never deletes it.
    #[serde(default)]
    pub reclaim_policy: ReclaimPolicy,
}

/// Fate of the primary's volume claim when its SqldCluster is deleted.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReclaimPolicy {
    /// Keep the claim (and its data) after the cluster is gone.
    #[default]
    Retain,
    /// Delete the claim with the cluster (the garbage collector follows the
    /// claim's owner reference to the SqldCluster).
    Delete,
}

fn default_storage_size() -> String {
    "1Gi".to_string()
}

impl Default for StorageSpec {
    fn default() -> Self {
        StorageSpec {
            size: default_storage_size(),
            storage_class_name: None,
            reclaim_policy: ReclaimPolicy::default(),
        }
    }
}

/// How clients authenticate, and where the credentials live.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// `password` (SCRAM-SHA-256, the default), `cleartext` (the password in
    /// clear text; only with `tls`) or `trust` (no authentication; only for
    /// clusters reachable by trusted clients).
    #[serde(default)]
    pub method: AuthMethod,

    /// Secret holding the password and the replication token (and,
    /// optionally, under `username`, the user name; `sqld` otherwise). When
    /// absent the operator generates `<name>-credentials` with random values
    /// once and never overwrites it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,

    /// Key of the password in the Secret.
    #[serde(default = "default_password_key")]
    pub password_key: String,

    /// Key of the replication token in the Secret.
    #[serde(default = "default_token_key")]
    pub replication_token_key: String,
}

fn default_password_key() -> String {
    "password".to_string()
}

fn default_token_key() -> String {
    "replication-token".to_string()
}

impl Default for AuthSpec {
    fn default() -> Self {
        AuthSpec {
            method: AuthMethod::default(),
            secret_name: None,
            password_key: default_password_key(),
            replication_token_key: default_token_key(),
        }
    }
}

/// Client authentication method, as sqld's `--auth` flag takes it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    #[default]
    Password,
    Trust,
    Cleartext,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Trust => "trust",
            AuthMethod::Cleartext => "cleartext",
        }
    }
}

/// A Secret with a certificate and private key in PEM (a `kubernetes.io/tls`
/// Secret, as cert-manager writes it, fits as is).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub secret_name: String,

    /// Key of the certificate chain in the Secret.
    #[serde(default = "default_cert_key")]
    pub cert_key: String,

    /// Key of the private key in the Secret.
    #[serde(default = "default_key_key")]
    pub key_key: String,

    /// Key of the CA certificate in the Secret (cert-manager writes
    /// `ca.crt`): replicas verify the primary's certificate against it for
    /// replication and forwarded writes, which then travel over TLS. The
    /// certificate must name the primary's headless Service
    /// (`<name>-primary.<namespace>.svc`, or a wildcard for it).
    #[serde(default = "default_ca_key")]
    pub ca_key: String,
}

fn default_ca_key() -> String {
    "ca.crt".to_string()
}

fn default_cert_key() -> String {
    "tls.crt".to_string()
}

fn default_key_key() -> String {
    "tls.key".to_string()
}

/// Replication tuning. Only replicas read these, so changing them never
/// restarts the primary.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationSpec {
    /// Frames (4 KiB pages) a replica may be behind the primary and still
    /// report ready, so the `-ro` Service only routes to fresh replicas
    /// (sqld's `--max-replica-lag-frames`). 0 means fully caught up.
    #[serde(default = "default_max_lag_frames")]
    #[schemars(range(min = 0))]
    pub max_lag_frames: i64,
}

fn default_max_lag_frames() -> i64 {
    10_000
}

impl Default for ReplicationSpec {
    fn default() -> Self {
        ReplicationSpec {
            max_lag_frames: default_max_lag_frames(),
        }
    }
}

/// Scraping by the Prometheus operator.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// Create a PodMonitor or ServiceMonitor. Needs the monitoring.coreos.com
    /// CRDs; when they are missing the `MonitoringReady` condition says so.
    #[serde(default)]
    pub enabled: bool,

    /// Which monitor object to create.
    #[serde(default)]
    pub kind: MonitorKind,

    /// Scrape interval (a Prometheus duration such as 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub interval: Option<String>,

    /// Extra labels on the monitor object (for a Prometheus selector).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Ingress to the sqld pods. The HTTP port (replication, forwarded writes,
/// metrics) admits the cluster's own pods, the operator's pods and
/// `metricsFrom`; the PostgreSQL port admits `pgFrom`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Create the NetworkPolicy (it takes effect where the network plugin
    /// enforces NetworkPolicies).
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// Who may connect to the PostgreSQL port (NetworkPolicy peers); empty
    /// admits every source, as a database Service usually must.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pg_from: Vec<NetworkPolicyPeer>,

    /// Who may scrape the HTTP port besides the cluster's own pods and the
    /// operator: by default the namespace `monitoring`.
    #[serde(default = "default_metrics_from")]
    pub metrics_from: Vec<NetworkPolicyPeer>,
}

fn default_true() -> bool {
    true
}

/// Namespace label every namespace carries (Kubernetes 1.22+).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

fn default_metrics_from() -> Vec<NetworkPolicyPeer> {
    vec![NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                NAMESPACE_NAME_LABEL.to_string(),
                "monitoring".to_string(),
            )])),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    }]
}

impl Default for NetworkPolicySpec {
    fn default() -> Self {
        NetworkPolicySpec {
            enabled: true,
            pg_from: Vec::new(),
            metrics_from: default_metrics_from(),
        }
    }
}

/// Kind of the Prometheus operator object to create.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MonitorKind {
    #[default]
    PodMonitor,
    ServiceMonitor,
}
