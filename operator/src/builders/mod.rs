//! Pure builders: one function per child object, each taking the
//! `SqldCluster` (and, where needed, inputs the reconciler resolved) and
//! returning the object the operator wants to exist. No I/O happens here;
//! the reconciler applies what these return and `render` prints it.

pub mod backup;
pub mod deployment;
pub mod foundationdb;
pub mod hash;
pub mod monitoring;
pub mod networkpolicy;
pub mod pdb;
pub mod pod;
pub mod secret;
pub mod services;
pub mod statefulset;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::DynamicObject;

use crate::crd::SqldCluster;
pub use secret::Credentials;

/// What the builders need beyond the cluster itself.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// Digest of the contents of the Secrets and ConfigMaps the pods read
    /// (empty when unknown, as in `render`); part of the config hash.
    pub external_revision: String,
    /// Digest of the replication token's Secret, key and value (empty when
    /// unknown). Written on the primary StatefulSet itself, not its pods,
    /// so the reconciler sees a token change coming.
    pub token_revision: String,
    /// Ready replica pods, as the Deployment last reported them (`None` when
    /// unknown, as in `render`): `-ro` routes to the primary while there
    /// are none.
    pub ready_replicas: Option<i32>,
    /// Values for a generated credentials Secret (only `render` and the
    /// first reconcile of a cluster need them).
    pub credentials: Option<Credentials>,
}

/// Every child object of a cluster, as the operator wants it.
#[derive(Clone, Debug)]
pub struct Children {
    pub credentials: Option<Secret>,
    pub cluster_file: Option<ConfigMap>,
    pub fdb_cluster: Option<DynamicObject>,
    pub headless: Service,
    pub rw: Service,
    pub ro: Service,
    pub r: Service,
    pub network_policy: Option<NetworkPolicy>,
    pub replicas: Deployment,
    pub primary: StatefulSet,
    pub replica_pdb: Option<PodDisruptionBudget>,
    pub monitor: Option<DynamicObject>,
}

/// Builds every child of `c`.
pub fn children(c: &SqldCluster, inputs: &Inputs) -> Children {
    Children {
        credentials: inputs
            .credentials
            .as_ref()
            .and_then(|creds| secret::credentials_secret(c, creds)),
        cluster_file: foundationdb::cluster_file_config_map(c),
        fdb_cluster: foundationdb::fdb_cluster(c),
        headless: services::headless_service(c),
        rw: services::rw_service(c),
        ro: services::ro_service(c, inputs.ready_replicas),
        r: services::r_service(c),
        network_policy: networkpolicy::network_policy(c),
        replicas: deployment::replica_deployment(c, inputs),
        primary: statefulset::primary_statefulset(c, inputs),
        replica_pdb: pdb::replica_pdb(c),
        monitor: monitoring::monitor(c),
    }
}

impl Children {
    /// Every object as JSON with `apiVersion` and `kind`, in the order the
    /// reconciler applies them (what pods need exists before the pods).
    pub fn to_values(&self) -> Result<Vec<serde_json::Value>, serde_json::Error> {
        let mut out = Vec::new();
        if let Some(s) = &self.credentials {
            out.push(typed(s)?);
        }
        if let Some(cm) = &self.cluster_file {
            out.push(typed(cm)?);
        }
        if let Some(f) = &self.fdb_cluster {
            out.push(serde_json::to_value(f)?);
        }
        for s in [&self.headless, &self.rw, &self.ro, &self.r] {
            out.push(typed(s)?);
        }
        if let Some(np) = &self.network_policy {
            out.push(typed(np)?);
        }
        out.push(typed(&self.replicas)?);
        out.push(typed(&self.primary)?);
        if let Some(p) = &self.replica_pdb {
            out.push(typed(p)?);
        }
        if let Some(m) = &self.monitor {
            out.push(serde_json::to_value(m)?);
        }
        Ok(out)
    }
}

/// k8s-openapi types serialize `apiVersion` and `kind` themselves.
fn typed<T: serde::Serialize>(obj: &T) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::to_value(obj)
}
