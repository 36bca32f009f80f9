//! Services: how clients and replicas find sqld.
//!
//! - `<name>-primary` (headless): the StatefulSet's governing Service; the
//!   primary URL replicas use for replication and forwarded writes. It
//!   publishes the pod before it is ready, so replicas can reach a primary
//!   that is still starting.
//! - `<name>-rw`: the primary, for writes.
//! - `<name>-ro`: the replicas, for reads (the primary while no replica is
//!   ready, so the name always answers).
//! - `<name>-r`: any instance; also carries the HTTP port for scraping.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::SqldCluster;
use crate::naming::{self, Role};

/// Label telling the Services of one cluster apart (a ServiceMonitor selects on it).
pub const LABEL_SERVICE: &str = "sqld.dev/service";

fn service(
    c: &SqldCluster,
    name: String,
    kind: &str,
    selector: BTreeMap<String, String>,
    with_http: bool,
    headless: bool,
) -> Service {
    let mut labels = naming::cluster_labels(c);
    labels.insert(LABEL_SERVICE.to_string(), kind.to_string());
    let mut ports = vec![port(naming::PG_PORT_NAME, naming::PG_PORT)];
    if with_http {
        ports.push(port(naming::HTTP_PORT_NAME, naming::HTTP_PORT));
    }
    Service {
        metadata: naming::child_meta(c, name, labels),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            cluster_ip: headless.then(|| "None".to_string()),
            publish_not_ready_addresses: headless.then_some(true),
            selector: Some(selector),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port: number,
        target_port: Some(IntOrString::String(name.to_string())),
        protocol: Some("TCP".to_string()),
        ..ServicePort::default()
    }
}

/// Headless Service of the primary StatefulSet.
pub fn headless_service(c: &SqldCluster) -> Service {
    let selector = naming::role_selector(c, Role::Primary);
    service(c, naming::headless_name(c), "primary", selector, true, true)
}

/// `<name>-rw`: the primary.
pub fn rw_service(c: &SqldCluster) -> Service {
    let selector = naming::role_selector(c, Role::Primary);
    service(c, naming::rw_service_name(c), "rw", selector, false, false)
}

/// `<name>-ro`: the replicas once one of them is ready; the primary before
/// that (no replicas, the first one still bootstrapping after a scale from
/// 0, the only one drained), so the name always answers. `ready_replicas`
/// is what the Deployment last reported (`None` when unknown: then the
/// spec decides).
pub fn ro_service(c: &SqldCluster, ready_replicas: Option<i32>) -> Service {
    let replicas_serve = c.spec.replicas > 0 && ready_replicas.is_none_or(|n| n > 0);
    let role = if replicas_serve {
        Role::Replica
    } else {
        Role::Primary
    };
    let selector = naming::role_selector(c, role);
    service(c, naming::ro_service_name(c), "ro", selector, false, false)
}

/// `<name>-r`: every instance.
pub fn r_service(c: &SqldCluster) -> Service {
    let selector = naming::cluster_selector(c);
    service(c, naming::r_service_name(c), "r", selector, true, false)
}
