//! Status computation (pure): conditions in metav1.Condition shape, phase,
//! transition times kept while a condition holds, and the operator's own
//! HTTP endpoints.

mod fixtures;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use sqld_operator::crd::{Phase, SqldCluster};
use sqld_operator::status::{self, Observed, PartState};
use sqld_operator::validation::Problem;

/// `prod/db` at generation 4, so observedGeneration is seen to follow it.
fn cluster(replicas: i32) -> SqldCluster {
    let mut c = fixtures::cluster(&format!("replicas: {replicas}"));
    c.metadata.generation = Some(4);
    c
}

fn healthy(replicas: i32) -> Observed {
    Observed {
        primary_ready: true,
        replicas_current: replicas,
        replicas_ready: replicas,
        ..Observed::default()
    }
}

fn cond<'a>(
    s: &'a sqld_operator::crd::SqldClusterStatus,
    t: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    s.conditions.iter().find(|c| c.type_ == t).unwrap()
}

#[test]
fn healthy_cluster_is_ready() {
    let now = Time(Timestamp::now());
    let s = status::compute(&cluster(2), &healthy(2), &now);
    assert_eq!(s.phase, Some(Phase::Ready));
    assert_eq!(s.observed_generation, Some(4));
    assert_eq!(s.conditions[0].type_, "Ready", "Ready first");
    for t in ["Ready", "PrimaryReady", "ReplicasReady", "BackendReady"] {
        let c = cond(&s, t);
        assert_eq!(c.status, "True");
        assert_eq!(c.observed_generation, Some(4));
        assert!(!c.reason.is_empty() && !c.message.is_empty());
    }
    assert!(
        s.conditions.iter().all(|c| c.type_ != "MonitoringReady"),
        "only when monitoring is on"
    );
}

#[test]
fn phases() {
    let now = Time(Timestamp::now());
    let c = cluster(2);
    let mut o = healthy(2);
    o.replicas_ready = 1;
    let s = status::compute(&c, &o, &now);
    assert_eq!(s.phase, Some(Phase::Degraded));
    assert_eq!(cond(&s, "Ready").reason, "ReplicasNotReady");
    assert_eq!(cond(&s, "ReplicasReady").message, "1/2 replicas ready");

    let s = status::compute(&c, &Observed::default(), &now);
    assert_eq!(s.phase, Some(Phase::Provisioning));
    let mut was_ready = c.clone();
    was_ready.status = Some(status::compute(&c, &healthy(2), &now));
    assert_eq!(
        status::compute(&was_ready, &Observed::default(), &now).phase,
        Some(Phase::Degraded)
    );

    let mut o = healthy(2);
    o.replicas_updating = true;
    let s = status::compute(&c, &o, &now);
    assert_eq!(s.phase, Some(Phase::Upgrading));
    // Not Ready until the new configuration runs everywhere (so a
    // `kubectl wait` after a change waits for it); the phase says it serves.
    assert_eq!(cond(&s, "Ready").status, "False");
    assert_eq!(cond(&s, "Ready").reason, "RollingUpdate");
    assert_eq!(cond(&s, "PrimaryReady").status, "True");

    let mut o = healthy(2);
    o.backend = Some(PartState::not_ready("FoundationDBNotAvailable", "waiting"));
    let s = status::compute(&c, &o, &now);
    assert_eq!(cond(&s, "Ready").reason, "BackendNotReady");

    let mut o = healthy(2);
    o.problems = vec![Problem {
        reason: "ReservedFlag",
        message: "no".into(),
    }];
    let s = status::compute(&c, &o, &now);
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(cond(&s, "Ready").reason, "ReservedFlag");
}

#[test]
fn transition_time_changes_only_with_the_status() {
    let c = cluster(1);
    let t0 = Time(Timestamp::now() - SignedDuration::from_secs(600));
    let mut c1 = c.clone();
    c1.status = Some(status::compute(&c, &healthy(1), &t0));
    let now = Time(Timestamp::now());
    let s = status::compute(&c1, &healthy(1), &now);
    assert_eq!(cond(&s, "Ready").last_transition_time, t0);
    assert_eq!(
        s,
        c1.status.clone().unwrap(),
        "unchanged status compares equal, so no write"
    );
    let s = status::compute(&c1, &Observed::default(), &now);
    assert_eq!(cond(&s, "Ready").last_transition_time, now);
}

#[test]
fn paused_keeps_everything_but_the_phase() {
    let mut c = cluster(1);
    c.status = Some(status::compute(&c, &healthy(1), &Time(Timestamp::now())));
    assert!(!status::is_paused(&c));
    c.metadata.annotations =
        Some([("sqld.dev/reconcile-paused".to_string(), "true".to_string())].into());
    assert!(status::is_paused(&c));
    let p = status::paused(&c);
    assert_eq!(p.phase, Some(Phase::Paused));
    assert_eq!(p.conditions, c.status.unwrap().conditions);
}

#[tokio::test]
async fn health_and_metrics_endpoints() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let ready = Arc::new(AtomicBool::new(false));
    let state = sqld_operator::http::HealthState {
        metrics: sqld_operator::metrics::Metrics::new(),
        ready: ready.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(sqld_operator::http::serve_on(listener, state));
    let get = |path: &'static str| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
    ready.store(true, Ordering::Relaxed);
    assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
    let metrics = get("/metrics").await;
    assert!(
        metrics.contains("sqld_operator_reconciliations_total 0"),
        "{metrics}"
    );
    assert!(metrics.contains("sqld_operator_leader 0"));
}
