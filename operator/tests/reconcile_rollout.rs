//! Rollouts that must not wedge: a rotated replication token rolls the
//! primary without waiting for replicas that cannot authenticate to the old
//! one, a replica rollout that stopped progressing releases the primary
//! with a Warning and a condition, and a broken primary of an old revision
//! is replaced once the spec is reverted.

mod fake;
mod fixtures;

use fake::scenario::*;
use fake::FakeApi;
use serde_json::json;

const POD: &str = PRIMARY_POD;

/// A cluster with a ready primary and replicas, and a first rollout done.
async fn ready_cluster(
    spec: &str,
) -> (FakeApi, std::sync::Arc<sqld_operator::controller::Context>) {
    let (fake, ctx) = setup(spec);
    run(&fake, &ctx).await;
    children_ready(&fake);
    run(&fake, &ctx).await;
    (fake, ctx)
}

/// The replica Deployment as its controller reports a rollout in progress.
fn replicas_rolling(fake: &FakeApi) {
    fake.edit(DEPLOY, |d| {
        let g = d["metadata"]["generation"].clone();
        d["status"] = json!({"replicas": 3, "readyReplicas": 2, "updatedReplicas": 1, "availableReplicas": 2, "observedGeneration": g});
    });
}

#[tokio::test]
async fn a_rotated_replication_token_rolls_the_primary_without_waiting() {
    let (fake, ctx) = ready_cluster("replicas: 2").await;
    let hash = |f: &FakeApi| {
        f.get(STS).unwrap()["spec"]["template"]["metadata"]["annotations"]["sqld.dev/config-hash"]
            .clone()
    };
    let before = hash(&fake);
    // The user rotates the token by editing the Secret.
    fake.edit(SECRET, |s| {
        s["data"]["replication-token"] = json!("bmV3LXRva2Vu")
    });
    run(&fake, &ctx).await;
    replicas_rolling(&fake); // new replicas cannot authenticate to the old primary
    run(&fake, &ctx).await;
    assert_ne!(hash(&fake), before, "the primary rolled with the new token");
    assert!(fake
        .events()
        .contains(&("Normal".into(), "PrimaryRolling".into())));

    // An ordinary change still waits for the replicas.
    children_ready(&fake);
    run(&fake, &ctx).await;
    let before = hash(&fake);
    edit_spec(&fake, |s| s["image"] = json!("sqld:2"));
    run(&fake, &ctx).await;
    replicas_rolling(&fake);
    run(&fake, &ctx).await;
    assert_eq!(hash(&fake), before, "held while the replicas roll");
}

#[tokio::test]
async fn a_stalled_replica_rollout_releases_the_primary_with_a_warning() {
    let (fake, ctx) = ready_cluster("replicas: 2").await;
    edit_spec(&fake, |s| s["image"] = json!("sqld:2"));
    run(&fake, &ctx).await;
    replicas_rolling(&fake);
    run(&fake, &ctx).await;
    assert_ne!(image(&fake, STS), "sqld:2", "held at first");

    // A new replica stays Pending (no node fits): the Deployment controller
    // gives up after progressDeadlineSeconds. No new pod ran the change, so
    // nothing says it is bad.
    let template = fake.get(DEPLOY).unwrap()["spec"]["template"].clone();
    fake.put(
        "/api/v1/namespaces/prod/pods/db-replica-new",
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "db-replica-new", "labels": template["metadata"]["labels"], "annotations": template["metadata"]["annotations"]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}}),
    );
    fake.edit(DEPLOY, |d| {
        d["status"]["conditions"] = json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet has timed out progressing."}]);
    });
    fake.clear_log();
    run(&fake, &ctx).await;
    assert_eq!(image(&fake, STS), "sqld:2", "no longer held");
    let progressing = condition(&fake, "Progressing");
    assert_eq!(progressing["status"], "False");
    assert_eq!(progressing["reason"], "ReplicaRolloutStalled");
    assert!(fake
        .events()
        .contains(&("Warning".into(), "ReplicaRolloutStalled".into())));
    fake.clear_log();
    run(&fake, &ctx).await;
    assert!(
        !fake.events().iter().any(|(t, _)| t == "Warning"),
        "one Warning per stall: {:?}",
        fake.events()
    );
}

#[tokio::test]
async fn a_broken_primary_of_an_old_revision_is_replaced() {
    let (fake, ctx) = ready_cluster("replicas: 0").await;
    // A bad image crash-loops the primary; the user reverts the spec, and
    // the StatefulSet rolls to a new revision the pod never reaches.
    let pod = |rev: &str, ready: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "db-primary-0", "uid": "pod-uid", "resourceVersion": "5",
                "labels": {"controller-revision-hash": rev}},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}})
    };
    fake.put(POD, pod("db-primary-bad", "False"));
    fake.edit(STS, |s| {
        s["status"] = json!({"replicas": 1, "readyReplicas": 0, "currentRevision": "db-primary-bad", "updateRevision": "db-primary-good", "observedGeneration": s["metadata"]["generation"]});
    });
    run(&fake, &ctx).await;
    assert!(fake.get(POD).is_none(), "the stale broken pod is deleted");
    assert!(fake
        .events()
        .contains(&("Normal".into(), "PrimaryReplaced".into())));

    // Neither a ready pod of the old revision (the StatefulSet controller
    // replaces it) nor a pod of the current one (it is just starting).
    for (rev, ready) in [("db-primary-bad", "True"), ("db-primary-good", "False")] {
        fake.put(POD, pod(rev, ready));
        run(&fake, &ctx).await;
        assert!(fake.get(POD).is_some(), "{rev} ready={ready} is left alone");
    }
}

#[tokio::test]
async fn current_image_is_what_the_primary_pod_runs() {
    let (fake, ctx) = ready_cluster("replicas: 0").await;
    let current = |f: &FakeApi| cluster(f).status.unwrap().current_image;
    let old = current(&fake).expect("an image");
    edit_spec(&fake, |s| s["image"] = json!("sqld:2"));
    run(&fake, &ctx).await;
    fake.edit(DEPLOY, |d| {
        d["status"]["observedGeneration"] = d["metadata"]["generation"].clone()
    });
    run(&fake, &ctx).await; // replicas done: the primary's template follows
    assert_eq!(
        image(&fake, STS),
        "sqld:2",
        "the template has the new image"
    );
    assert_eq!(current(&fake), Some(old), "the pod still runs the old one");
    children_ready(&fake); // the pod rolled
    run(&fake, &ctx).await;
    assert_eq!(current(&fake).as_deref(), Some("sqld:2"));
}

#[tokio::test]
async fn ro_routes_to_the_primary_until_a_replica_is_ready() {
    let (fake, ctx) = ready_cluster("replicas: 0").await;
    let ro_role = |f: &FakeApi| {
        f.get(&format!("{SVC}db-ro")).unwrap()["spec"]["selector"]["sqld.dev/role"].clone()
    };
    assert_eq!(ro_role(&fake), "primary");
    edit_spec(&fake, |s| s["replicas"] = json!(1));
    run(&fake, &ctx).await;
    run(&fake, &ctx).await; // the first replica is still bootstrapping
    assert_eq!(ro_role(&fake), "primary");
    children_ready(&fake);
    run(&fake, &ctx).await;
    assert_eq!(ro_role(&fake), "replica");
    // The only replica is drained: reads go to the primary meanwhile.
    fake.edit(DEPLOY, |d| d["status"]["readyReplicas"] = json!(0));
    run(&fake, &ctx).await;
    assert_eq!(ro_role(&fake), "primary");
}

#[tokio::test]
async fn replicas_failing_on_the_change_keep_the_primary_held() {
    let (fake, ctx) = ready_cluster("replicas: 2").await;
    edit_spec(&fake, |s| s["image"] = json!("sqld:bad"));
    run(&fake, &ctx).await;
    replicas_rolling(&fake);
    // The new replica pod was scheduled and runs the new template, but
    // crash-loops: the change itself is bad, and would break the primary.
    let template = fake.get(DEPLOY).unwrap()["spec"]["template"].clone();
    fake.put(
        "/api/v1/namespaces/prod/pods/db-replica-new",
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "db-replica-new", "labels": template["metadata"]["labels"], "annotations": template["metadata"]["annotations"]},
            "status": {"conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}]}}),
    );
    fake.edit(DEPLOY, |d| {
        d["status"]["conditions"] = json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]);
    });
    fake.clear_log();
    run(&fake, &ctx).await;
    assert_ne!(image(&fake, STS), "sqld:bad", "the primary keeps running");
    assert_eq!(
        condition(&fake, "Progressing")["reason"],
        "ReplicaRolloutFailed"
    );
    assert!(fake
        .events()
        .contains(&("Warning".into(), "ReplicaRolloutFailed".into())));
}
