//! Prometheus operator objects (monitoring.coreos.com/v1). They are
//! unstructured (`DynamicObject`): this crate does not depend on the
//! Prometheus operator's types, and the reconciler only applies them after
//! discovery shows the CRDs exist.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use super::services::LABEL_SERVICE;
use crate::crd::{MonitorKind, SqldCluster};
use crate::naming;

/// Group/version of the Prometheus operator's CRDs.
pub const MONITORING_GROUP: &str = "monitoring.coreos.com";
pub const MONITORING_VERSION: &str = "v1";

/// API resource of a monitor kind.
pub fn monitor_resource(kind: MonitorKind) -> ApiResource {
    let (kind, plural) = match kind {
        MonitorKind::PodMonitor => ("PodMonitor", "podmonitors"),
        MonitorKind::ServiceMonitor => ("ServiceMonitor", "servicemonitors"),
    };
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(MONITORING_GROUP, MONITORING_VERSION, kind),
        plural,
    )
}

/// The monitor object, or `None` when monitoring is disabled.
pub fn monitor(c: &SqldCluster) -> Option<DynamicObject> {
    let m = &c.spec.monitoring;
    if !m.enabled {
        return None;
    }
    let mut endpoint = json!({ "port": naming::HTTP_PORT_NAME, "path": "/metrics" });
    if let Some(interval) = &m.interval {
        endpoint["interval"] = json!(interval);
    }
    // Every series carries the cluster and the role (as `sqld_dev_cluster`
    // and `sqld_dev_role`): the dashboard and the alerts group by them.
    let target_labels = [naming::LABEL_CLUSTER, naming::LABEL_ROLE];
    let spec = match m.kind {
        MonitorKind::PodMonitor => json!({
            "selector": { "matchLabels": naming::cluster_selector(c) },
            "podMetricsEndpoints": [endpoint],
            "podTargetLabels": target_labels,
        }),
        MonitorKind::ServiceMonitor => {
            let mut selector = naming::cluster_selector(c);
            selector.insert(LABEL_SERVICE.to_string(), "r".to_string());
            json!({
                "selector": { "matchLabels": selector },
                "endpoints": [endpoint],
                "podTargetLabels": target_labels,
            })
        }
    };
    let mut labels = m.labels.clone();
    labels.extend(naming::cluster_labels(c));
    let mut obj = DynamicObject::new(&naming::monitor_name(c), &monitor_resource(m.kind));
    obj.metadata = naming::child_meta(c, naming::monitor_name(c), labels);
    obj.data = json!({ "spec": spec });
    Some(obj)
}
