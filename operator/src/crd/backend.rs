//! `SqldCluster.spec.backend`: where the durable state lives.
//!
//! `local` keeps the database on the primary's PersistentVolume. With
//! `foundationdb` commits are made durable in FoundationDB, so the primary's
//! disk is only a cache; sqld reaches FoundationDB through a cluster file,
//! which comes from one of three places (exactly one must be set).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Storage backend. The type is fixed at creation: switching would strand
/// the data in the old backend.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type == oldSelf.type").message("backend.type is immutable"),
    validation = Rule::new("self.type == 'foundationdb' ? has(self.foundationdb) : !has(self.foundationdb)").message("backend.foundationdb is required with type foundationdb and forbidden otherwise")
)]
pub struct BackendSpec {
    /// `local` (default) or `foundationdb`. sqld's FoundationDB backend is
    /// not built yet: with `foundationdb` the operator provisions the
    /// cluster and mounts its cluster file, but sqld still keeps its data on
    /// the primary's local cache volume (an emptyDir), which a rescheduled
    /// pod loses.
    #[serde(default, rename = "type")]
    pub type_: BackendType,

    /// FoundationDB settings; required when `type` is `foundationdb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foundationdb: Option<FoundationDbSpec>,
}

/// The storage backend type.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendType {
    #[default]
    Local,
    Foundationdb,
}

/// How sqld finds its FoundationDB cluster: exactly one of `clusterFile`
/// (an existing cluster's cluster-file ConfigMap), `connectionString` (the
/// operator writes the ConfigMap) or `managed` (the operator creates a
/// FoundationDBCluster for the fdb-kubernetes-operator to run).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.clusterFile) ? 1 : 0) + (has(self.connectionString) ? 1 : 0) + (has(self.managed) ? 1 : 0) == 1").message("set exactly one of clusterFile, connectionString, managed"))]
pub struct FoundationDbSpec {
    /// A ConfigMap with the cluster file of an existing FoundationDB cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_file: Option<ClusterFileRef>,

    /// The cluster file's content (`description:id@host:port,...`); the
    /// operator stores it in the ConfigMap `<name>-fdb-cluster-file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_]+:[A-Za-z0-9]+@.+$"))]
    pub connection_string: Option<String>,

    /// A FoundationDBCluster created and owned by this operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedFoundationDb>,
}

/// Reference to a ConfigMap key holding a cluster file.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterFileRef {
    /// Name of the ConfigMap (in the cluster's namespace).
    #[schemars(length(min = 1))]
    pub config_map_name: String,

    /// Key of the cluster file in the ConfigMap.
    #[serde(default = "default_cluster_file_key")]
    pub key: String,
}

/// Key under which the fdb-kubernetes-operator (and this operator) store a
/// cluster file in a ConfigMap.
pub const CLUSTER_FILE_KEY: &str = "cluster-file";

fn default_cluster_file_key() -> String {
    CLUSTER_FILE_KEY.to_string()
}

/// A FoundationDB cluster run by the fdb-kubernetes-operator
/// (apps.foundationdb.org/v1beta2), which must be installed.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedFoundationDb {
    /// FoundationDB version, e.g. 7.3.43.
    #[schemars(regex(pattern = r"^[0-9]+\.[0-9]+\.[0-9]+$"))]
    pub version: String,

    /// Redundancy mode of the database (single, double, triple).
    #[serde(default)]
    pub redundancy_mode: RedundancyMode,

    /// Process counts per class.
    #[serde(default)]
    pub process_counts: ProcessCounts,
}

/// FoundationDB redundancy mode.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum RedundancyMode {
    Single,
    #[default]
    Double,
    Triple,
}

impl RedundancyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RedundancyMode::Single => "single",
            RedundancyMode::Double => "double",
            RedundancyMode::Triple => "triple",
        }
    }
}

/// Number of FoundationDB processes of each class.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProcessCounts {
    /// Storage servers.
    #[serde(default = "default_storage_processes")]
    #[schemars(range(min = 1, max = 100))]
    pub storage: i32,

    /// Transaction log servers.
    #[serde(default = "default_log_processes")]
    #[schemars(range(min = 1, max = 100))]
    pub log: i32,

    /// Stateless processes; 0 lets the fdb operator choose (its default),
    /// -1 runs none (the fdb operator's meaning of both).
    #[serde(default = "default_stateless_processes")]
    #[schemars(range(min = -1, max = 100))]
    pub stateless: i32,
}

fn default_storage_processes() -> i32 {
    3
}

fn default_log_processes() -> i32 {
    3
}

fn default_stateless_processes() -> i32 {
    0
}

impl Default for ProcessCounts {
    fn default() -> Self {
        ProcessCounts {
            storage: default_storage_processes(),
            log: default_log_processes(),
            stateless: default_stateless_processes(),
        }
    }
}
