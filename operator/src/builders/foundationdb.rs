//! FoundationDB backend objects: a `FoundationDBCluster` for the
//! fdb-kubernetes-operator when the backend is managed, and a ConfigMap with
//! the cluster file when the user gives a connection string. Either way the
//! pods mount one ConfigMap key as their cluster file.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use crate::crd::{SqldCluster, CLUSTER_FILE_KEY};
use crate::naming;

/// Group/version/kind of the fdb-kubernetes-operator's cluster resource.
pub const FDB_GROUP: &str = "apps.foundationdb.org";
pub const FDB_VERSION: &str = "v1beta2";
pub const FDB_KIND: &str = "FoundationDBCluster";

/// API resource of `FoundationDBCluster`.
pub fn fdb_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(FDB_GROUP, FDB_VERSION, FDB_KIND),
        "foundationdbclusters",
    )
}

/// The ConfigMap name and key the pods read the cluster file from, or `None`
/// for the local backend.
pub fn cluster_file_source(c: &SqldCluster) -> Option<(String, String)> {
    let fdb = c.spec.backend.foundationdb.as_ref()?;
    if let Some(r) = &fdb.cluster_file {
        Some((r.config_map_name.clone(), r.key.clone()))
    } else if fdb.connection_string.is_some() {
        Some((
            naming::fdb_cluster_file_config_map_name(c),
            CLUSTER_FILE_KEY.to_string(),
        ))
    } else if fdb.managed.is_some() {
        Some((
            naming::fdb_operator_config_map_name(c),
            CLUSTER_FILE_KEY.to_string(),
        ))
    } else {
        None
    }
}

/// The cluster-file ConfigMap written from `connectionString`.
pub fn cluster_file_config_map(c: &SqldCluster) -> Option<ConfigMap> {
    let fdb = c.spec.backend.foundationdb.as_ref()?;
    let conn = fdb.connection_string.as_ref()?;
    Some(ConfigMap {
        metadata: naming::child_meta(
            c,
            naming::fdb_cluster_file_config_map_name(c),
            naming::cluster_labels(c),
        ),
        data: Some(BTreeMap::from([(
            CLUSTER_FILE_KEY.to_string(),
            conn.clone(),
        )])),
        ..ConfigMap::default()
    })
}

/// The managed `FoundationDBCluster`.
pub fn fdb_cluster(c: &SqldCluster) -> Option<DynamicObject> {
    let managed = c.spec.backend.foundationdb.as_ref()?.managed.as_ref()?;
    let counts = &managed.process_counts;
    let mut obj = DynamicObject::new(&naming::fdb_cluster_name(c), &fdb_resource());
    obj.metadata = naming::child_meta(c, naming::fdb_cluster_name(c), naming::cluster_labels(c));
    obj.data = json!({
        "spec": {
            "version": managed.version,
            "databaseConfiguration": {
                "redundancy_mode": managed.redundancy_mode.as_str(),
                "storage_engine": "ssd-2",
            },
            "processCounts": {
                "storage": counts.storage,
                "log": counts.log,
                "stateless": counts.stateless,
            },
        }
    });
    Some(obj)
}
