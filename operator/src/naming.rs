//! Names, labels, ports and paths shared by every builder: the conventions
//! that tie a `SqldCluster` to its children. Selectors are derived from the
//! same functions that label pods, so they cannot drift apart.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::crd::SqldCluster;

/// Field manager of every server-side apply this operator makes.
pub const FIELD_MANAGER: &str = "sqld-operator";

/// PostgreSQL protocol port of sqld (`--pg-listen-addr`).
pub const PG_PORT: i32 = 5432;
/// HTTP port of sqld (`--http-listen-addr`): health, readiness, metrics,
/// and the replication and write-forwarding endpoint replicas call.
pub const HTTP_PORT: i32 = 8080;
/// With TLS, sqld's internal API (replication and forwarded writes) moves
/// off the HTTP port to this one (`--internal-listen-addr`), over TLS.
pub const INTERNAL_PORT: i32 = 8443;
/// Port names, used by probes, Services and monitors.
pub const PG_PORT_NAME: &str = "postgres";
pub const HTTP_PORT_NAME: &str = "http";
pub const INTERNAL_PORT_NAME: &str = "internal";

/// Mount point of the database directory (PVC, or emptyDir on replicas).
pub const DATA_MOUNT: &str = "/var/lib/sqld";
/// `--db-path`: a directory below the mount, so a filesystem's `lost+found`
/// never sits in sqld's own directory.
pub const DB_PATH: &str = "/var/lib/sqld/db";
/// Mount point of the TLS Secret.
pub const TLS_MOUNT: &str = "/etc/sqld/tls";
/// Mount point of the FoundationDB cluster file.
pub const FDB_MOUNT: &str = "/etc/foundationdb";
/// Name of the volume claim template of the primary (PVC `data-<sts>-0`).
pub const DATA_VOLUME: &str = "data";

/// Label keys.
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_CLUSTER: &str = "sqld.dev/cluster";
pub const LABEL_ROLE: &str = "sqld.dev/role";

/// Annotations read on a SqldCluster.
pub const ANNOTATION_RESTART: &str = "sqld.dev/restartedAt";
pub const ANNOTATION_PAUSED: &str = "sqld.dev/reconcile-paused";
/// Annotation written on pod templates: hash of everything the pods depend on.
pub const ANNOTATION_CONFIG_HASH: &str = "sqld.dev/config-hash";
/// On the primary StatefulSet: which replication token its pods were given
/// (a digest), so a rotation rolls the primary without waiting for
/// replicas that cannot authenticate to the old one.
pub const ANNOTATION_TOKEN_REVISION: &str = "sqld.dev/replication-token-revision";

/// The role of a sqld pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
        }
    }
}

/// Child object names of one cluster.
pub fn primary_name(c: &SqldCluster) -> String {
    format!("{}-primary", c.name_any())
}
/// The headless Service shares the StatefulSet's name (its `serviceName`).
pub fn headless_name(c: &SqldCluster) -> String {
    primary_name(c)
}
pub fn replica_name(c: &SqldCluster) -> String {
    format!("{}-replica", c.name_any())
}
pub fn rw_service_name(c: &SqldCluster) -> String {
    format!("{}-rw", c.name_any())
}
pub fn ro_service_name(c: &SqldCluster) -> String {
    format!("{}-ro", c.name_any())
}
pub fn r_service_name(c: &SqldCluster) -> String {
    format!("{}-r", c.name_any())
}
pub fn credentials_secret_name(c: &SqldCluster) -> String {
    format!("{}-credentials", c.name_any())
}
pub fn fdb_cluster_name(c: &SqldCluster) -> String {
    format!("{}-fdb", c.name_any())
}
/// ConfigMap the fdb-kubernetes-operator writes for a FoundationDBCluster.
pub fn fdb_operator_config_map_name(c: &SqldCluster) -> String {
    format!("{}-config", fdb_cluster_name(c))
}
/// ConfigMap this operator writes from `connectionString`.
pub fn fdb_cluster_file_config_map_name(c: &SqldCluster) -> String {
    format!("{}-fdb-cluster-file", c.name_any())
}
pub fn monitor_name(c: &SqldCluster) -> String {
    c.name_any()
}

/// NetworkPolicy of the cluster's pods.
pub fn network_policy_name(c: &SqldCluster) -> String {
    c.name_any()
}
/// PVC of the primary pod, as the StatefulSet controller names it.
pub fn primary_pvc_name(c: &SqldCluster) -> String {
    format!("{DATA_VOLUME}-{}-0", primary_name(c))
}

/// Namespace of the cluster (`default` when the object has none, as in a
/// file given to `render`).
pub fn namespace(c: &SqldCluster) -> String {
    c.namespace().unwrap_or_else(|| "default".to_string())
}

/// In-cluster DNS name of a Service of this cluster.
pub fn service_dns(c: &SqldCluster, service: &str) -> String {
    format!("{service}.{}.svc", namespace(c))
}

/// The URL replicas use to reach the primary (replication and forwarded
/// writes): its headless Service, which has exactly the primary pod.
pub fn primary_url(c: &SqldCluster) -> String {
    let host = service_dns(c, &headless_name(c));
    match c.spec.tls {
        Some(_) => format!("https://{host}:{INTERNAL_PORT}"),
        None => format!("http://{host}:{HTTP_PORT}"),
    }
}

/// Labels that identify every object of a cluster (and select its pods).
pub fn cluster_labels(c: &SqldCluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), "sqld".to_string()),
        (LABEL_INSTANCE.to_string(), c.name_any()),
        (LABEL_MANAGED_BY.to_string(), FIELD_MANAGER.to_string()),
        (LABEL_CLUSTER.to_string(), c.name_any()),
    ])
}

/// Labels of a child object that belongs to one role.
pub fn role_labels(c: &SqldCluster, role: Role) -> BTreeMap<String, String> {
    let mut labels = cluster_labels(c);
    labels.insert(LABEL_COMPONENT.to_string(), role.as_str().to_string());
    labels.insert(LABEL_ROLE.to_string(), role.as_str().to_string());
    labels
}

/// Selector of every pod of the cluster.
pub fn cluster_selector(c: &SqldCluster) -> BTreeMap<String, String> {
    BTreeMap::from([(LABEL_CLUSTER.to_string(), c.name_any())])
}

/// Selector of the pods of one role.
pub fn role_selector(c: &SqldCluster, role: Role) -> BTreeMap<String, String> {
    let mut s = cluster_selector(c);
    s.insert(LABEL_ROLE.to_string(), role.as_str().to_string());
    s
}

/// `role_selector` as a `LabelSelector`.
pub fn role_label_selector(c: &SqldCluster, role: Role) -> LabelSelector {
    LabelSelector {
        match_labels: Some(role_selector(c, role)),
        ..LabelSelector::default()
    }
}

/// `role_selector` in the string form of a scale subresource's selector.
pub fn role_selector_string(c: &SqldCluster, role: Role) -> String {
    role_selector(c, role)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// UID given to a cluster read from a file, which has none: `render` output
/// then shows owner references in their real shape.
pub const PLACEHOLDER_UID: &str = "00000000-0000-0000-0000-000000000000";

/// The owner reference every child carries, so deleting the cluster deletes
/// them (controller=true also lets the controller map child events back).
pub fn owner_reference(c: &SqldCluster) -> OwnerReference {
    OwnerReference {
        api_version: SqldCluster::api_version(&()).to_string(),
        kind: SqldCluster::kind(&()).to_string(),
        name: c.name_any(),
        uid: c.uid().unwrap_or_else(|| PLACEHOLDER_UID.to_string()),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Metadata shared by every child: name, namespace, labels, owner.
pub fn child_meta(
    c: &SqldCluster,
    name: String,
    labels: BTreeMap<String, String>,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some(name),
        namespace: Some(namespace(c)),
        labels: Some(labels),
        owner_references: Some(vec![owner_reference(c)]),
        ..Default::default()
    }
}
