//! The NetworkPolicy of a cluster's sqld pods. Every pod can reach every
//! other in a Kubernetes cluster by default; the HTTP port carries the
//! internal API (replication, forwarded writes: token-guarded, but no reason
//! to expose it) and the metrics, so it admits only the cluster's own pods
//! (replicas poll the primary), the operator and the monitoring peers. The
//! PostgreSQL port admits what `networkPolicy.pgFrom` says (everyone by
//! default: it is the database's public face, and it authenticates).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::SqldCluster;
use crate::naming;

/// Pod label of the operator's own pods (chart and manifests set it).
const OPERATOR_POD_LABEL: (&str, &str) = (naming::LABEL_NAME, "sqld-operator");

/// The NetworkPolicy, or `None` when `networkPolicy.enabled` is false.
pub fn network_policy(c: &SqldCluster) -> Option<NetworkPolicy> {
    let np = &c.spec.network_policy;
    if !np.enabled {
        return None;
    }
    let selector = |labels: BTreeMap<String, String>| LabelSelector {
        match_labels: Some(labels),
        ..LabelSelector::default()
    };
    let own_pods = NetworkPolicyPeer {
        pod_selector: Some(selector(naming::cluster_selector(c))),
        ..NetworkPolicyPeer::default()
    };
    // The operator runs in a namespace of its own, unknown here.
    let operator = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector::default()),
        pod_selector: Some(selector(BTreeMap::from([(
            OPERATOR_POD_LABEL.0.to_string(),
            OPERATOR_POD_LABEL.1.to_string(),
        )]))),
        ..NetworkPolicyPeer::default()
    };
    let internal_from = vec![own_pods.clone(), operator.clone()];
    let mut http_from = vec![own_pods, operator];
    http_from.extend(np.metrics_from.iter().cloned());
    let port = |name: &str| {
        Some(vec![NetworkPolicyPort {
            port: Some(IntOrString::String(name.to_string())),
            protocol: Some("TCP".to_string()),
            ..NetworkPolicyPort::default()
        }])
    };
    Some(NetworkPolicy {
        metadata: naming::child_meta(c, naming::network_policy_name(c), naming::cluster_labels(c)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(naming::cluster_selector(c))),
            policy_types: Some(vec!["Ingress".to_string()]),
            ingress: Some(
                vec![
                    NetworkPolicyIngressRule {
                        ports: port(naming::PG_PORT_NAME),
                        // Empty admits every source.
                        from: (!np.pg_from.is_empty()).then(|| np.pg_from.clone()),
                    },
                    NetworkPolicyIngressRule {
                        ports: port(naming::HTTP_PORT_NAME),
                        from: Some(http_from),
                    },
                ]
                .into_iter()
                // With TLS the internal API has its own port: the cluster's
                // pods and the operator only, monitoring not.
                .chain(c.spec.tls.as_ref().map(|_| NetworkPolicyIngressRule {
                    ports: port(naming::INTERNAL_PORT_NAME),
                    from: Some(internal_from),
                }))
                .collect(),
            ),
            ..NetworkPolicySpec::default()
        }),
    })
}
