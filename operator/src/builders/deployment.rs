//! The read replicas: a Deployment, since replicas are interchangeable and
//! keep no state of their own (each bootstraps from the primary into an
//! emptyDir). A new replica starts before an old one stops, so a roll never
//! lowers read capacity.

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{pod, Inputs};
use crate::crd::SqldCluster;
use crate::naming::{self, Role};

/// The replica Deployment (present, possibly with 0 replicas, for every
/// cluster, so scaling up is only a change of `replicas`).
pub fn replica_deployment(c: &SqldCluster, inputs: &Inputs) -> Deployment {
    Deployment {
        metadata: naming::child_meta(
            c,
            naming::replica_name(c),
            naming::role_labels(c, Role::Replica),
        ),
        spec: DeploymentSpec {
            replicas: Some(c.spec.replicas),
            selector: naming::role_label_selector(c, Role::Replica),
            template: pod::pod_template(c, Role::Replica, inputs),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_string()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            revision_history_limit: Some(3),
            ..DeploymentSpec::default()
        },
        status: None,
    }
}
