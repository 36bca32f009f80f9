//! The whole operator process against the fake API server: leader election,
//! the controller's list/watch wiring, a reconcile driven by the watch of
//! SqldClusters, and a graceful shutdown that releases the lease.

mod fake;
mod fixtures;

use std::time::Duration;

use fake::scenario::{setup, CLUSTER, STS};
use sqld_operator::controller::{run_with, RunOptions};

fn options() -> RunOptions {
    RunOptions {
        namespace: None,
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        log_format: None,
        leader_elect: true,
        lease_name: "sqld-operator-leader".into(),
        lease_namespace: "sqld-system".into(),
        identity: Some("operator-0".into()),
    }
}

const LEASE: &str =
    "/apis/coordination.k8s.io/v1/namespaces/sqld-system/leases/sqld-operator-leader";

#[tokio::test]
async fn leads_watches_reconciles_and_releases_the_lease() {
    let (fake, _ctx) = setup("replicas: 1");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_with(fake.client(), options(), async move {
        let _ = stopped.await;
    }));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while fake.get(CLUSTER).unwrap().get("status").is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reconcile: {:?}",
            fake.calls()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fake.get(STS).is_some());
    assert_eq!(
        fake.get(LEASE).unwrap()["spec"]["holderIdentity"],
        "operator-0"
    );
    let calls = fake.calls();
    for watched in [
        "sqldclusters",
        "statefulsets",
        "deployments",
        "services",
        "poddisruptionbudgets",
    ] {
        assert!(
            calls
                .iter()
                .any(|c| c.starts_with("GET ") && c.ends_with(&format!("/{watched}"))),
            "no list of {watched}: {calls:?}"
        );
    }
    let owned_list = fake
        .log()
        .into_iter()
        .find(|r| r.path.ends_with("/statefulsets") && r.method == "GET")
        .unwrap();
    assert!(
        owned_list
            .query
            .contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dsqld-operator"),
        "{}",
        owned_list.query
    );

    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("stops")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(
        fake.get(LEASE).unwrap()["spec"]["holderIdentity"].is_null(),
        "lease released"
    );
}

#[tokio::test]
async fn a_standby_does_not_reconcile() {
    let (fake, _ctx) = setup("replicas: 1");
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::jiff::Timestamp::now(),
    );
    fake.put(LEASE, serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "sqld-operator-leader", "namespace": "sqld-system", "resourceVersion": "1"},
        "spec": {"holderIdentity": "someone-else", "leaseDurationSeconds": 3600, "renewTime": now},
    }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_with(fake.client(), options(), async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(fake.get(STS).is_none(), "a standby must not reconcile");
    assert!(!fake.calls().iter().any(|c| c.contains("sqldclusters")));
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops")
        .unwrap();
    assert!(result.is_ok());
}
