//! Helpers shared by the reconcile tests: a fake API server holding one
//! SqldCluster `prod/db`, a reconcile context talking to it, and stand-ins
//! for the StatefulSet and Deployment controllers.

use std::sync::Arc;

use serde_json::{json, Value};
use sqld_operator::controller::{reconcile, Context};
use sqld_operator::crd::{Phase, SqldCluster};
use sqld_operator::metrics::Metrics;

use super::FakeApi;

pub const CLUSTER: &str = "/apis/sqld.dev/v1alpha1/namespaces/prod/sqldclusters/db";
pub const SECRET: &str = "/api/v1/namespaces/prod/secrets/db-credentials";
pub const STS: &str = "/apis/apps/v1/namespaces/prod/statefulsets/db-primary";
pub const DEPLOY: &str = "/apis/apps/v1/namespaces/prod/deployments/db-replica";
pub const PDB: &str = "/apis/policy/v1/namespaces/prod/poddisruptionbudgets/db-replica";
pub const PVC: &str = "/api/v1/namespaces/prod/persistentvolumeclaims/data-db-primary-0";
pub const STORAGE_CLASS_FAST: &str = "/apis/storage.k8s.io/v1/storageclasses/fast";
pub const STORAGE_CLASS_FIXED: &str = "/apis/storage.k8s.io/v1/storageclasses/fixed";
pub const SVC: &str = "/api/v1/namespaces/prod/services/";

/// A fake holding the cluster `spec`, and a context talking to it.
pub fn setup(spec: &str) -> (FakeApi, Arc<Context>) {
    let fake = FakeApi::new();
    let c = crate::fixtures::cluster(spec);
    fake.put(CLUSTER, serde_json::to_value(&c).unwrap());
    let ctx = Arc::new(Context::new(fake.client(), Metrics::new(), None));
    (fake, ctx)
}

pub fn cluster(fake: &FakeApi) -> SqldCluster {
    serde_json::from_value(fake.get(CLUSTER).unwrap()).unwrap()
}

pub async fn run(fake: &FakeApi, ctx: &Arc<Context>) -> kube::runtime::controller::Action {
    reconcile(Arc::new(cluster(fake)), ctx.clone())
        .await
        .expect("reconcile succeeds")
}

/// Changes the spec as `kubectl apply` would: new generation.
pub fn edit_spec(fake: &FakeApi, f: impl FnOnce(&mut Value)) {
    fake.edit(CLUSTER, |c| {
        f(&mut c["spec"]);
        let g = c["metadata"]["generation"].as_i64().unwrap() + 1;
        c["metadata"]["generation"] = json!(g);
    });
}

pub const PRIMARY_POD: &str = "/api/v1/namespaces/prod/pods/db-primary-0";

/// Plays the StatefulSet and Deployment controllers: everything rolled out and ready.
pub fn children_ready(fake: &FakeApi) {
    let template = fake.get(STS).unwrap()["spec"]["template"].clone();
    fake.put(
        PRIMARY_POD,
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "db-primary-0", "uid": "pod-uid", "labels": {"controller-revision-hash": "r"}},
            "spec": template["spec"],
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    fake.edit(STS, |s| {
        let g = s["metadata"]["generation"].clone();
        s["status"] = json!({"replicas": 1, "readyReplicas": 1, "currentRevision": "r", "updateRevision": "r", "observedGeneration": g});
    });
    fake.edit(DEPLOY, |d| {
        let g = d["metadata"]["generation"].clone();
        let n = d["spec"]["replicas"].clone();
        d["status"] = json!({"replicas": n, "readyReplicas": n, "updatedReplicas": n, "availableReplicas": n, "observedGeneration": g});
    });
}

pub fn condition(fake: &FakeApi, type_: &str) -> Value {
    let status = fake.get(CLUSTER).unwrap()["status"].clone();
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

pub fn phase(fake: &FakeApi) -> Option<Phase> {
    cluster(fake).status.and_then(|s| s.phase)
}

pub fn image(fake: &FakeApi, path: &str) -> String {
    let o = fake.get(path).unwrap();
    o["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}
