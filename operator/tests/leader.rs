//! Leader election against the fake API server: take a free lease, renew
//! our own, respect a live holder whatever its clock says, take over one
//! seen unchanged for its duration, give up a lease whose renewal stalls
//! before it could expire, and lose gracefully when another candidate wins
//! the race.

mod fake;
mod fixtures;

use fake::FakeApi;
use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::json;
use std::time::Duration;

use sqld_operator::leader::{is_free, LeaderElector, Timing, LEASE_DURATION, RENEW_DEADLINE};

const LEASE: &str =
    "/apis/coordination.k8s.io/v1/namespaces/sqld-system/leases/sqld-operator-leader";

fn lease(holder: &str, renewed: Timestamp) -> serde_json::Value {
    lease_for(holder, renewed, 15)
}

fn lease_for(holder: &str, renewed: Timestamp, seconds: i32) -> serde_json::Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "sqld-operator-leader", "namespace": "sqld-system", "resourceVersion": "7"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": seconds, "renewTime": MicroTime(renewed), "leaseTransitions": 2},
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

/// Short timings so the tests run in real time; the same ratios as the
/// defaults.
const FAST: Timing = Timing {
    lease_duration: Duration::from_millis(1500),
    renew_deadline: Duration::from_millis(1000),
    retry_period: Duration::from_millis(200),
};

fn fast(fake: &FakeApi, id: &str) -> LeaderElector {
    LeaderElector::with_timing(
        fake.client(),
        "sqld-system",
        "sqld-operator-leader",
        id,
        FAST,
    )
    .unwrap()
}

#[tokio::test]
async fn takes_over_a_lease_seen_unchanged_for_its_duration() {
    let fake = FakeApi::new();
    let stale = Timestamp::now() - SignedDuration::from_secs(60);
    fake.put(LEASE, lease_for("old", stale, 1));
    let new = fast(&fake, "new");
    // First sight: the record's age on another clock means nothing.
    assert!(!new.try_acquire_or_renew().await.unwrap());
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert!(new.try_acquire_or_renew().await.unwrap());
    let spec = fake.get(LEASE).unwrap()["spec"].clone();
    assert_eq!(spec["holderIdentity"], "new");
    assert_eq!(spec["leaseTransitions"], 3);
}

#[tokio::test]
async fn clock_skew_never_makes_a_renewed_lease_look_expired() {
    let fake = FakeApi::new();
    // The holder's clock is a minute behind the standby's: by renewTime the
    // lease looks long expired, yet the holder renews it all the time.
    let behind = |ms: i64| {
        Timestamp::now() - SignedDuration::from_secs(60) + SignedDuration::from_millis(ms)
    };
    fake.put(LEASE, lease_for("old", behind(0), 1));
    let standby = fast(&fake, "standby");
    assert!(!standby.try_acquire_or_renew().await.unwrap());
    for i in 1..=4 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        fake.edit(LEASE, |l| {
            l["spec"]["renewTime"] = json!(MicroTime(behind(i * 600)))
        });
        assert!(
            !standby.try_acquire_or_renew().await.unwrap(),
            "took a live lease after {} ms",
            i * 600
        );
    }
    // A holder whose clock is an hour ahead stops renewing: the lease is
    // taken once it has been seen unchanged for its duration, not in an hour.
    fake.put(
        LEASE,
        lease_for(
            "ahead",
            Timestamp::now() + SignedDuration::from_secs(3600),
            1,
        ),
    );
    assert!(!standby.try_acquire_or_renew().await.unwrap());
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert!(standby.try_acquire_or_renew().await.unwrap());
}

#[tokio::test]
async fn a_stalled_renewal_ends_leadership_before_the_lease_expires() {
    let fake = FakeApi::new();
    let leader = fast(&fake, "leader");
    assert!(leader.try_acquire_or_renew().await.unwrap());
    let started = std::time::Instant::now();
    // The API server stops answering (a hung connection, no read timeout).
    fake.stall("GET", "leases/sqld-operator-leader");
    let ended = tokio::time::timeout(Duration::from_secs(5), leader.hold()).await;
    let took = started.elapsed();
    assert!(ended.is_ok(), "hold() hung on a stalled request");
    assert!(
        took < FAST.lease_duration,
        "the leader must stop before a standby may take over: {took:?}"
    );
    assert!(took >= FAST.renew_deadline, "gave up early: {took:?}");
}

#[tokio::test]
async fn timing_follows_client_go() {
    assert!(Timing::default().is_safe());
    assert!(RENEW_DEADLINE < LEASE_DURATION);
    let equal = Timing {
        renew_deadline: LEASE_DURATION,
        ..Timing::default()
    };
    assert!(
        !equal.is_safe(),
        "a deadline equal to the lease lets two leaders overlap"
    );
    let fake = FakeApi::new();
    assert!(
        LeaderElector::with_timing(fake.client(), "ns", "l", "a", equal).is_err(),
        "refused"
    );
}

#[tokio::test]
async fn a_lost_race_is_not_leadership() {
    let fake = FakeApi::new();
    // A released lease: free for the taking, and two candidates race.
    fake.put(LEASE, lease("", Timestamp::now()));
    fake.fail("PUT", "leases/sqld-operator-leader", 409, 1);
    assert!(!elector(&fake, "new").try_acquire_or_renew().await.unwrap());
    fake.fail("GET", "leases/sqld-operator-leader", 500, 1);
    assert!(elector(&fake, "new").try_acquire_or_renew().await.is_err());
}

#[test]
fn a_released_or_never_held_lease_is_free() {
    let spec = |holder: Option<&str>| LeaseSpec {
        holder_identity: holder.map(str::to_string),
        lease_duration_seconds: Some(15),
        renew_time: Some(MicroTime(Timestamp::now())),
        ..LeaseSpec::default()
    };
    assert!(!is_free(&spec(Some("a"))));
    assert!(is_free(&spec(None)));
    assert!(is_free(&spec(Some(""))));
}
