//! Optional integrations (Prometheus operator, FoundationDB) and the check
//! that every request the reconciler makes is allowed by `rbac::rules()`.

mod fake;
mod fixtures;

use fake::scenario::*;
use serde_json::json;
use sqld_operator::crd::Phase;

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
    fake.put(PVC, json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data-db-primary-0"}, "spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}}}));
    fake.put(STORAGE_CLASS_FAST, json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"}, "provisioner": "x", "allowVolumeExpansion": true}));
    run(&fake, &ctx).await;
    children_ready(&fake);
    edit_spec(&fake, |s| {
        s["storage"]["size"] = json!("2Gi");
        s["storage"]["reclaimPolicy"] = json!("Delete");
        s["networkPolicy"] = json!({"enabled": false});
        s["replicas"] = json!(1);
    });
    run(&fake, &ctx).await;
    // A broken primary of an old revision (replaced) and objects to prune.
    fake.put("/api/v1/namespaces/prod/pods/db-primary-0", json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db-primary-0", "uid": "p", "labels": {"controller-revision-hash": "old"}}}));
    fake.edit(STS, |s| s["status"]["updateRevision"] = json!("new"));
    // A replica rollout past its deadline: its pods are looked at.
    fake.edit(DEPLOY, |d| d["status"]["conditions"] = json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]));
    let ours = json!([{"apiVersion": "sqld.dev/v1alpha1", "kind": "SqldCluster", "name": "db", "uid": "cluster-uid"}]);
    fake.put(PDB, json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "db-replica", "ownerReferences": ours}}));
    fake.put("/apis/monitoring.coreos.com/v1/namespaces/prod/servicemonitors/db", json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "db", "ownerReferences": ours}}));
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

    let mut rules = sqld_operator::rbac::rules();
    rules.extend(sqld_operator::rbac::cluster_scoped_rules());
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
                    "list" | "watch" => watched.contains(&(rule.group, *res)) || has(verb),
                    // Server-side apply of a missing object is authorized as a create.
                    "create" => has("create") || has("patch"),
                    // The event recorder patches an event that repeats.
                    "patch" if rule.group == "events.k8s.io" => true,
                    // Checked by the API server when a child's owner
                    // reference sets blockOwnerDeletion, never requested.
                    "update" if *res == "sqldclusters/finalizers" => true,
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
