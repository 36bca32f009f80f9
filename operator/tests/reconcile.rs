//! Reconcile tests against a fake API server (kube-rs' tower-test pattern,
//! see `fake/`): create, become ready, scale, roll a spec change replicas
//! first, repair drift, report invalid specs, retry API errors with
//! backoff, grow the volume, and the contents of the status patch.

mod fake;

use std::sync::Arc;
use std::time::Duration;

use fake::FakeApi;
use kube::api::ObjectMeta;
use kube::runtime::controller::Action;
use serde_json::{json, Value};
use sqld_operator::controller::{error_policy, reconcile, Context};
use sqld_operator::crd::{Phase, SqldCluster, SqldClusterSpec};
use sqld_operator::metrics::Metrics;

const CLUSTER: &str = "/apis/sqld.dev/v1alpha1/namespaces/prod/sqldclusters/db";
const SECRET: &str = "/api/v1/namespaces/prod/secrets/db-credentials";
const STS: &str = "/apis/apps/v1/namespaces/prod/statefulsets/db-primary";
const DEPLOY: &str = "/apis/apps/v1/namespaces/prod/deployments/db-replica";
const PDB: &str = "/apis/policy/v1/namespaces/prod/poddisruptionbudgets/db-replica";
const PVC: &str = "/api/v1/namespaces/prod/persistentvolumeclaims/data-db-primary-0";
const SVC: &str = "/api/v1/namespaces/prod/services/";

/// A fake holding the cluster `spec`, and a context talking to it.
fn setup(spec: &str) -> (FakeApi, Arc<Context>) {
    let fake = FakeApi::new();
    let spec: SqldClusterSpec = serde_yaml::from_str(spec).unwrap();
    let mut c = SqldCluster::new("db", spec);
    c.metadata = ObjectMeta {
        name: Some("db".into()),
        namespace: Some("prod".into()),
        uid: Some("cluster-uid".into()),
        generation: Some(1),
        ..ObjectMeta::default()
    };
    fake.put(CLUSTER, serde_json::to_value(&c).unwrap());
    let ctx = Arc::new(Context::new(fake.client(), Metrics::new(), None));
    (fake, ctx)
}

fn cluster(fake: &FakeApi) -> SqldCluster {
    serde_json::from_value(fake.get(CLUSTER).unwrap()).unwrap()
}

async fn run(fake: &FakeApi, ctx: &Arc<Context>) -> kube::runtime::controller::Action {
    reconcile(Arc::new(cluster(fake)), ctx.clone())
        .await
        .expect("reconcile succeeds")
}

/// Changes the spec as `kubectl apply` would: new generation.
fn edit_spec(fake: &FakeApi, f: impl FnOnce(&mut Value)) {
    fake.edit(CLUSTER, |c| {
        f(&mut c["spec"]);
        let g = c["metadata"]["generation"].as_i64().unwrap() + 1;
        c["metadata"]["generation"] = json!(g);
    });
}

/// Plays the StatefulSet and Deployment controllers: everything rolled out and ready.
fn children_ready(fake: &FakeApi) {
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

fn condition(fake: &FakeApi, type_: &str) -> Value {
    let status = fake.get(CLUSTER).unwrap()["status"].clone();
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

fn phase(fake: &FakeApi) -> Option<Phase> {
    cluster(fake).status.and_then(|s| s.phase)
}

fn image(fake: &FakeApi, path: &str) -> String {
    let o = fake.get(path).unwrap();
    o["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}

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
    run(&fake, &ctx).await;
    assert_eq!(fake.get(DEPLOY).unwrap()["spec"]["replicas"], 4);
    assert_eq!(
        fake.get(STS).unwrap()["spec"],
        primary_before,
        "the primary is untouched"
    );
    assert_eq!(condition(&fake, "ReplicasReady")["status"], "False");
    assert!(fake.events().contains(&("Normal".into(), "Updated".into())));

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
    run(&fake, &ctx).await;
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
    run(&fake, &ctx).await;
    assert_eq!(
        image(&fake, STS),
        "sqld:2",
        "primary follows once replicas are done"
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

#[tokio::test]
async fn invalid_spec_reports_instead_of_failing() {
    let (fake, ctx) = setup("extraArgs: ['--db-path=/tmp/x']");
    let action = run(&fake, &ctx).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
    assert!(
        fake.get(STS).is_none() && fake.get(DEPLOY).is_none(),
        "nothing built from a bad spec"
    );
    assert_eq!(phase(&fake), Some(Phase::Failed));
    let ready = condition(&fake, "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "ReservedFlag");
    assert!(fake
        .events()
        .contains(&("Warning".into(), "ReservedFlag".into())));
}

#[tokio::test]
async fn missing_referenced_secrets_are_reported() {
    let (fake, ctx) = setup("{auth: {secretName: mine}, tls: {secretName: cert}}");
    run(&fake, &ctx).await;
    assert_eq!(condition(&fake, "Ready")["reason"], "AuthSecretNotFound");
    assert!(
        fake.get(SECRET).is_none(),
        "never generates a Secret the user named"
    );

    fake.put("/api/v1/namespaces/prod/secrets/mine", json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mine"}, "data": {"password": "cHc=", "replication-token": "dG9r"}}));
    run(&fake, &ctx).await;
    assert_eq!(condition(&fake, "Ready")["reason"], "TLSSecretNotFound");

    fake.put("/api/v1/namespaces/prod/secrets/cert", json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cert"}, "data": {"tls.crt": "eA==", "tls.key": "eQ=="}}));
    run(&fake, &ctx).await;
    assert!(fake.get(STS).is_some());
    assert_eq!(condition(&fake, "Ready")["reason"], "PrimaryNotReady");

    // Rotating the password rolls the pods.
    let hash = |f: &FakeApi| {
        f.get(STS).unwrap()["spec"]["template"]["metadata"]["annotations"]["sqld.dev/config-hash"]
            .clone()
    };
    let before = hash(&fake);
    fake.edit("/api/v1/namespaces/prod/secrets/mine", |s| {
        s["data"]["password"] = json!("bmV3")
    });
    run(&fake, &ctx).await;
    children_ready(&fake);
    run(&fake, &ctx).await;
    assert_ne!(hash(&fake), before);
}

#[tokio::test]
async fn api_errors_fail_the_reconcile_and_back_off_exponentially() {
    let (fake, ctx) = setup("replicas: 1");
    fake.fail("PATCH", "deployments/db-replica", 500, 3);
    let c = Arc::new(cluster(&fake));
    for expected in [5, 10, 20] {
        let err = reconcile(c.clone(), ctx.clone()).await.unwrap_err();
        assert_eq!(err.metric_label(), "kube");
        assert_eq!(
            error_policy(c.clone(), &err, ctx.clone()),
            Action::requeue(Duration::from_secs(expected))
        );
    }
    assert!(fake
        .events()
        .contains(&("Warning".into(), "ReconcileError".into())));
    let metrics = ctx.metrics.encode();
    assert!(
        metrics.contains("sqld_operator_reconcile_failures_total{reason=\"kube\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("sqld_operator_reconciliations_total 3"));
    assert!(metrics.contains("sqld_operator_reconcile_duration_seconds_count 3"));

    // The fault clears: success, and the backoff starts over.
    run(&fake, &ctx).await;
    assert!(fake.get(STS).is_some());
    fake.fail("PATCH", "statefulsets/db-primary", 500, 1);
    let err = reconcile(Arc::new(cluster(&fake)), ctx.clone())
        .await
        .unwrap_err();
    assert_eq!(
        error_policy(c, &err, ctx.clone()),
        Action::requeue(Duration::from_secs(5))
    );
}

#[tokio::test]
async fn storage_grows_the_claim_and_never_shrinks() {
    let (fake, ctx) = setup("storage: {size: 10Gi}");
    run(&fake, &ctx).await;
    fake.put(PVC, json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data-db-primary-0"}, "spec": {"resources": {"requests": {"storage": "10Gi"}}}}));
    let vct_size = |f: &FakeApi| {
        f.get(STS).unwrap()["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]
            ["storage"]
            .clone()
    };

    edit_spec(&fake, |s| s["storage"]["size"] = json!("20Gi"));
    run(&fake, &ctx).await;
    assert_eq!(
        fake.get(PVC).unwrap()["spec"]["resources"]["requests"]["storage"],
        "20Gi"
    );
    assert_eq!(
        vct_size(&fake),
        "10Gi",
        "the immutable claim template is left as created"
    );
    assert!(fake
        .events()
        .contains(&("Normal".into(), "VolumeExpansion".into())));

    edit_spec(&fake, |s| s["storage"]["size"] = json!("5Gi"));
    run(&fake, &ctx).await;
    assert_eq!(condition(&fake, "Ready")["reason"], "StorageShrinkRejected");
    assert_eq!(
        fake.get(PVC).unwrap()["spec"]["resources"]["requests"]["storage"],
        "20Gi"
    );
}

#[tokio::test]
async fn monitoring_needs_the_prometheus_operator() {
    let (fake, ctx) = setup("monitoring: {enabled: true}");
    run(&fake, &ctx).await;
    let m = condition(&fake, "MonitoringReady");
    assert_eq!(
        (m["status"].as_str(), m["reason"].as_str()),
        (Some("False"), Some("CRDNotInstalled"))
    );

    fake.serve(
        "monitoring.coreos.com/v1",
        &[
            ("PodMonitor", "podmonitors"),
            ("ServiceMonitor", "servicemonitors"),
        ],
    );
    run(&fake, &ctx).await;
    assert_eq!(condition(&fake, "MonitoringReady")["status"], "True");
    let pm = fake
        .get("/apis/monitoring.coreos.com/v1/namespaces/prod/podmonitors/db")
        .unwrap();
    assert_eq!(pm["spec"]["podMetricsEndpoints"][0]["port"], "http");

    edit_spec(&fake, |s| s["monitoring"]["enabled"] = json!(false));
    run(&fake, &ctx).await;
    assert!(
        fake.get("/apis/monitoring.coreos.com/v1/namespaces/prod/podmonitors/db")
            .is_none(),
        "pruned"
    );
}

#[tokio::test]
async fn managed_foundationdb() {
    let spec = "{backend: {type: foundationdb, foundationdb: {managed: {version: 7.3.43}}}}";
    let (fake, ctx) = setup(spec);
    run(&fake, &ctx).await;
    assert_eq!(
        condition(&fake, "Ready")["reason"],
        "FoundationDBOperatorMissing"
    );
    assert!(fake.get(STS).is_none());

    fake.serve(
        "apps.foundationdb.org/v1beta2",
        &[("FoundationDBCluster", "foundationdbclusters")],
    );
    run(&fake, &ctx).await;
    let fdb = "/apis/apps.foundationdb.org/v1beta2/namespaces/prod/foundationdbclusters/db-fdb";
    assert_eq!(fake.get(fdb).unwrap()["spec"]["version"], "7.3.43");
    assert_eq!(condition(&fake, "BackendReady")["status"], "False");
    children_ready(&fake);
    fake.edit(fdb, |f| {
        f["status"] = json!({"health": {"available": true}})
    });
    run(&fake, &ctx).await;
    assert_eq!(condition(&fake, "BackendReady")["status"], "True");
    assert_eq!(phase(&fake), Some(Phase::Ready));
}

#[tokio::test]
async fn every_request_is_allowed_by_the_rbac_rules() {
    let (fake, ctx) = setup(
        "{replicas: 2, monitoring: {enabled: true}, tls: {secretName: cert}, storage: {size: 1Gi}}",
    );
    fake.serve(
        "monitoring.coreos.com/v1",
        &[
            ("PodMonitor", "podmonitors"),
            ("ServiceMonitor", "servicemonitors"),
        ],
    );
    fake.put("/api/v1/namespaces/prod/secrets/cert", json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cert"}, "data": {"tls.crt": "eA==", "tls.key": "eQ=="}}));
    fake.put(PVC, json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data-db-primary-0"}, "spec": {}}));
    run(&fake, &ctx).await;
    children_ready(&fake);
    edit_spec(&fake, |s| {
        s["storage"]["size"] = json!("2Gi");
        s["replicas"] = json!(1);
    });
    run(&fake, &ctx).await;
    let fdb = "{backend: {type: foundationdb, foundationdb: {managed: {version: 7.3.43}}}}";
    let (fake2, ctx2) = setup(fdb);
    fake2.serve(
        "apps.foundationdb.org/v1beta2",
        &[("FoundationDBCluster", "foundationdbclusters")],
    );
    run(&fake2, &ctx2).await;
    let cs =
        "{backend: {type: foundationdb, foundationdb: {connectionString: 'a:b@10.0.0.1:4500'}}}";
    let (fake3, ctx3) = setup(cs);
    run(&fake3, &ctx3).await;

    let cf =
        "{backend: {type: foundationdb, foundationdb: {clusterFile: {configMapName: fdb-file}}}}";
    let (fake4, ctx4) = setup(cf);
    run(&fake4, &ctx4).await;

    let rules = sqld_operator::rbac::rules();
    let mut seen = std::collections::BTreeSet::new();
    let logs = [fake.log(), fake2.log(), fake3.log(), fake4.log()];
    for r in logs.into_iter().flatten() {
        let Some((group, resource, verb)) =
            sqld_operator::rbac::request_attributes(&r.method, &r.path)
        else {
            continue; // discovery
        };
        assert!(
            sqld_operator::rbac::allows(&rules, &group, &resource, &verb),
            "{} {} needs {verb} on {group}/{resource}, missing from rbac::rules()",
            r.method,
            r.path
        );
        seen.insert((group, resource, verb));
    }
    // The controller lists and watches exactly the cluster and its owned kinds.
    let watched = [
        ("sqld.dev", "sqldclusters"),
        ("apps", "statefulsets"),
        ("apps", "deployments"),
        ("", "services"),
        ("policy", "poddisruptionbudgets"),
    ];
    for (g, r) in watched {
        for verb in ["list", "watch"] {
            assert!(
                sqld_operator::rbac::allows(&rules, g, r, verb),
                "{verb} {g}/{r}"
            );
        }
    }
    // And the rules grant nothing that goes unused.
    for rule in &rules {
        for verb in rule.verbs {
            let used = rule.resources.iter().any(|res| {
                let has = |v: &str| {
                    seen.contains(&(rule.group.to_string(), res.to_string(), v.to_string()))
                };
                match *verb {
                    "list" | "watch" => watched.contains(&(rule.group, *res)),
                    // Server-side apply of a missing object is authorized as a create.
                    "create" => has("create") || has("patch"),
                    // The event recorder patches an event that repeats.
                    "patch" if rule.group == "events.k8s.io" => true,
                    v => has(v),
                }
            });
            assert!(
                used,
                "{verb} on {}/{:?} is granted but never used",
                rule.group, rule.resources
            );
        }
    }
}
