//! Leader election against the fake API server: take a free lease, renew
//! our own, respect a live holder, take over an expired one, and lose
//! gracefully when another candidate wins the race.

mod fake;

use fake::FakeApi;
use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::json;
use sqld_operator::leader::{is_expired, LeaderElector};

const LEASE: &str =
    "/apis/coordination.k8s.io/v1/namespaces/sqld-system/leases/sqld-operator-leader";

fn lease(holder: &str, renewed: Timestamp) -> serde_json::Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "sqld-operator-leader", "namespace": "sqld-system", "resourceVersion": "7"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": MicroTime(renewed), "leaseTransitions": 2},
    })
}

fn elector(fake: &FakeApi, id: &str) -> LeaderElector {
    LeaderElector::new(fake.client(), "sqld-system", "sqld-operator-leader", id)
}

#[tokio::test]
async fn takes_a_free_lease_and_renews_it() {
    let fake = FakeApi::new();
    let a = elector(&fake, "a");
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert_eq!(fake.get(LEASE).unwrap()["spec"]["holderIdentity"], "a");
    let rv = fake.get(LEASE).unwrap()["metadata"]["resourceVersion"].clone();
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert_ne!(
        fake.get(LEASE).unwrap()["metadata"]["resourceVersion"],
        rv,
        "renewed"
    );
    assert!(
        !elector(&fake, "b").try_acquire_or_renew().await.unwrap(),
        "b waits while a renews"
    );
    a.release().await;
    assert!(
        elector(&fake, "b").try_acquire_or_renew().await.unwrap(),
        "released lease is free"
    );
}

#[tokio::test]
async fn takes_over_an_expired_lease() {
    let fake = FakeApi::new();
    let stale = Timestamp::now() - SignedDuration::from_secs(60);
    fake.put(LEASE, lease("old", stale));
    assert!(elector(&fake, "new").try_acquire_or_renew().await.unwrap());
    let spec = fake.get(LEASE).unwrap()["spec"].clone();
    assert_eq!(spec["holderIdentity"], "new");
    assert_eq!(spec["leaseTransitions"], 3);
}

#[tokio::test]
async fn a_lost_race_is_not_leadership() {
    let fake = FakeApi::new();
    fake.put(
        LEASE,
        lease("old", Timestamp::now() - SignedDuration::from_secs(60)),
    );
    fake.fail("PUT", "leases/sqld-operator-leader", 409, 1);
    assert!(!elector(&fake, "new").try_acquire_or_renew().await.unwrap());
    fake.fail("GET", "leases/sqld-operator-leader", 500, 1);
    assert!(elector(&fake, "new").try_acquire_or_renew().await.is_err());
}

#[test]
fn expiry() {
    let now = Timestamp::now();
    let spec = |holder: Option<&str>, ago: i64| LeaseSpec {
        holder_identity: holder.map(str::to_string),
        lease_duration_seconds: Some(15),
        renew_time: Some(MicroTime(now - SignedDuration::from_secs(ago))),
        ..LeaseSpec::default()
    };
    assert!(!is_expired(&spec(Some("a"), 5), now));
    assert!(is_expired(&spec(Some("a"), 16), now));
    assert!(is_expired(&spec(None, 0), now));
}
