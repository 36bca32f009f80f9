//! Reconcile lifecycle against a fake API server (kube-rs' tower-test
//! pattern, see `fake/`): create, become ready, scale, roll a spec change
//! replicas first, restart and pause annotations, repair drift.

mod fake;
mod fixtures;

use std::time::Duration;

use fake::scenario::*;
use fake::FakeApi;
use kube::runtime::controller::Action;
use serde_json::json;
use sqld_operator::crd::Phase;

#[tokio::test]
async fn create_applies_every_child_then_reports_provisioning() {
    let (fake, ctx) = setup("replicas: 2");
    let action = run(&fake, &ctx).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(10)));

    let secret = fake.get(SECRET).expect("credentials generated");
    assert!(
        secret["data"]["password"].is_string() && secret["data"]["replication-token"].is_string()
    );
    for svc in ["db-primary", "db-rw", "db-ro", "db-r"] {
        assert!(fake.get(&format!("{SVC}{svc}")).is_some(), "service {svc}");
    }
    assert!(fake.get(DEPLOY).is_some() && fake.get(STS).is_some() && fake.get(PDB).is_some());

    // Every write is a server-side apply by our field manager, except the
    // one-time Secret creation, events and the deletes of unwanted monitors.
    for r in fake.log().iter().filter(|r| r.method == "PATCH") {
        assert!(
            r.content_type.starts_with("application/apply-patch"),
            "{} {}",
            r.method,
            r.path
        );
        assert!(
            r.query.contains("fieldManager=sqld-operator") && r.query.contains("force=true"),
            "{}",
            r.query
        );
    }
    let writes = fake.writes();
    let pos = |p: &str| writes.iter().position(|w| w.ends_with(p)).unwrap();
    assert!(
        pos("/secrets") < pos("services/db-rw"),
        "credentials before pods"
    );
    assert!(
        pos("deployments/db-replica") < pos("statefulsets/db-primary"),
        "replicas before the primary"
    );
    assert!(
        writes.last().unwrap().ends_with("sqldclusters/db/status"),
        "status written last"
    );

    assert_eq!(phase(&fake), Some(Phase::Provisioning));
    let ready = condition(&fake, "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "PrimaryNotReady");
    assert_eq!(ready["observedGeneration"], 1);
    assert!(ready["lastTransitionTime"].is_string() && ready["message"].is_string());
    assert!(fake
        .events()
        .contains(&("Normal".into(), "CredentialsGenerated".into())));
    assert!(fake.events().contains(&("Normal".into(), "Created".into())));
    for reason in ["ReplicasCreated", "PrimaryCreated"] {
        assert!(
            fake.events().contains(&("Normal".into(), reason.into())),
            "{reason}"
        );
    }
}

#[tokio::test]
async fn ready_children_make_a_ready_cluster_with_endpoints() {
    let (fake, ctx) = setup("replicas: 2");
    run(&fake, &ctx).await;
    children_ready(&fake);
    fake.clear_log();
    let action = run(&fake, &ctx).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    assert_eq!(phase(&fake), Some(Phase::Ready));
    for t in ["Ready", "PrimaryReady", "ReplicasReady", "BackendReady"] {
        assert_eq!(condition(&fake, t)["status"], "True", "{t}");
    }
    let status = fake.get(CLUSTER).unwrap()["status"].clone();
    assert_eq!(status["readyReplicas"], 2);
    assert_eq!(status["replicas"], 2);
    assert_eq!(
        status["selector"],
        "sqld.dev/cluster=db,sqld.dev/role=replica"
    );
    assert_eq!(status["endpoints"]["rw"], "db-rw.prod.svc");
    assert_eq!(status["endpoints"]["ro"], "db-ro.prod.svc");
    assert_eq!(status["endpoints"]["port"], 5432);
    assert_eq!(status["currentImage"], sqld_operator::crd::DEFAULT_IMAGE);
    assert!(
        fake.events().is_empty(),
        "no event when nothing changed: {:?}",
        fake.events()
    );
    // The existing Secret is never written again.
    assert!(!fake.writes().iter().any(|w| w.contains("/secrets")));

    // A third reconcile with nothing new does not even rewrite status.
    fake.clear_log();
    run(&fake, &ctx).await;
    assert!(
        !fake.writes().iter().any(|w| w.ends_with("/status")),
        "{:?}",
        fake.writes()
    );
}

#[tokio::test]
async fn scaling_changes_replicas_only() {
    let (fake, ctx) = setup("replicas: 2");
    run(&fake, &ctx).await;
    children_ready(&fake);
    run(&fake, &ctx).await;
    let primary_before = fake.get(STS).unwrap()["spec"].clone();

    edit_spec(&fake, |s| s["replicas"] = json!(4));
    fake.clear_log();
    run(&fake, &ctx).await;
    assert_eq!(fake.get(DEPLOY).unwrap()["spec"]["replicas"], 4);
    assert_eq!(
        fake.get(STS).unwrap()["spec"],
        primary_before,
        "the primary is untouched"
    );
    assert_eq!(condition(&fake, "ReplicasReady")["status"], "False");
    assert!(fake.events().contains(&("Normal".into(), "Updated".into())));
    assert!(fake
        .events()
        .contains(&("Normal".into(), "ReplicasScaled".into())));
    assert!(!fake.events().iter().any(|(_, r)| r.starts_with("Primary")));

    edit_spec(&fake, |s| s["replicas"] = json!(1));
    run(&fake, &ctx).await;
    assert!(
        fake.get(PDB).is_none(),
        "a single replica gets no disruption budget"
    );
    edit_spec(&fake, |s| s["replicas"] = json!(0));
    run(&fake, &ctx).await;
    let ro = fake.get(&format!("{SVC}db-ro")).unwrap();
    assert_eq!(ro["spec"]["selector"]["sqld.dev/role"], "primary");
}

#[tokio::test]
async fn spec_change_rolls_replicas_first_then_the_primary() {
    let (fake, ctx) = setup("replicas: 2");
    run(&fake, &ctx).await;
    children_ready(&fake);
    run(&fake, &ctx).await;

    edit_spec(&fake, |s| s["image"] = json!("sqld:2"));
    fake.clear_log();
    run(&fake, &ctx).await;
    assert!(fake
        .events()
        .contains(&("Normal".into(), "ReplicasRolling".into())));
    assert!(!fake
        .events()
        .contains(&("Normal".into(), "PrimaryRolling".into())));
    assert_eq!(
        image(&fake, DEPLOY),
        "sqld:2",
        "replicas get the new image first"
    );
    assert_eq!(
        image(&fake, STS),
        sqld_operator::crd::DEFAULT_IMAGE,
        "primary waits"
    );
    assert_eq!(phase(&fake), Some(Phase::Upgrading));

    // Still rolling: the primary keeps waiting.
    run(&fake, &ctx).await;
    assert_eq!(image(&fake, STS), sqld_operator::crd::DEFAULT_IMAGE);

    children_ready(&fake);
    fake.clear_log();
    run(&fake, &ctx).await;
    assert_eq!(
        image(&fake, STS),
        "sqld:2",
        "primary follows once replicas are done"
    );
    assert_eq!(
        fake.events(),
        [("Normal".to_string(), "PrimaryRolling".to_string())]
    );
}

#[tokio::test]
async fn a_primary_that_is_down_is_not_held_back() {
    let (fake, ctx) = setup("replicas: 2");
    run(&fake, &ctx).await;
    // Nothing became ready (say, a broken image); the user fixes the image.
    edit_spec(&fake, |s| s["image"] = json!("sqld:fixed"));
    run(&fake, &ctx).await;
    assert_eq!(image(&fake, DEPLOY), "sqld:fixed");
    assert_eq!(
        image(&fake, STS),
        "sqld:fixed",
        "replicas cannot settle without a primary"
    );
}

#[tokio::test]
async fn restart_annotation_and_pause() {
    let (fake, ctx) = setup("replicas: 0");
    run(&fake, &ctx).await;
    children_ready(&fake);
    run(&fake, &ctx).await;
    let hash = |f: &FakeApi| {
        f.get(STS).unwrap()["spec"]["template"]["metadata"]["annotations"]["sqld.dev/config-hash"]
            .clone()
    };
    let before = hash(&fake);
    fake.edit(CLUSTER, |c| {
        c["metadata"]["annotations"] = json!({"sqld.dev/restartedAt": "2026-01-02T03:04:05Z"})
    });
    run(&fake, &ctx).await;
    assert_eq!(
        hash(&fake),
        before,
        "the primary restarts after the replica Deployment rolled"
    );
    children_ready(&fake);
    run(&fake, &ctx).await;
    assert_ne!(hash(&fake), before, "restart request rolls the pods");

    fake.edit(CLUSTER, |c| {
        c["metadata"]["annotations"]["sqld.dev/reconcile-paused"] = json!("true")
    });
    edit_spec(&fake, |s| s["image"] = json!("sqld:3"));
    fake.clear_log();
    assert_eq!(run(&fake, &ctx).await, Action::await_change());
    assert_ne!(image(&fake, STS), "sqld:3");
    assert_eq!(phase(&fake), Some(Phase::Paused));
    let child_writes: Vec<_> = fake
        .writes()
        .into_iter()
        .filter(|w| !w.contains("sqldclusters") && !w.contains("/events"))
        .collect();
    assert!(child_writes.is_empty(), "{child_writes:?}");
}

#[tokio::test]
async fn drift_is_repaired() {
    let (fake, ctx) = setup("replicas: 1");
    run(&fake, &ctx).await;
    let rw = format!("{SVC}db-rw");
    fake.edit(&rw, |s| {
        s["spec"]["selector"] = json!({"app": "something-else"})
    });
    fake.edit(DEPLOY, |d| d["spec"]["replicas"] = json!(7));
    run(&fake, &ctx).await;
    assert_eq!(
        fake.get(&rw).unwrap()["spec"]["selector"]["sqld.dev/role"],
        "primary"
    );
    assert_eq!(fake.get(DEPLOY).unwrap()["spec"]["replicas"], 1);
}
