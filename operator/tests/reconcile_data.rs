//! Reconciles that must never lose data or wedge a cluster: the primary's
//! claim outlives its StatefulSet, a volume growth the storage refuses is
//! reported while everything else goes on, the live claim templates are
//! kept, and objects of our names that we do not own are left alone.

mod fake;
mod fixtures;

use fake::scenario::*;
use fake::FakeApi;
use serde_json::{json, Value};

const PODMONITOR: &str = "/apis/monitoring.coreos.com/v1/namespaces/prod/podmonitors/db";

fn claim(size: &str, class: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data-db-primary-0", "resourceVersion": "7", "uid": "pvc-uid",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db-primary", "uid": "sts-uid"}]},
        "spec": {"storageClassName": class, "resources": {"requests": {"storage": size}}},
        "status": {"capacity": {"storage": size}}})
}

fn classes(fake: &FakeApi) {
    fake.put(STORAGE_CLASS_FAST, json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"}, "provisioner": "x", "allowVolumeExpansion": true}));
    fake.put(STORAGE_CLASS_FIXED, json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fixed"}, "provisioner": "x"}));
}

fn owner_uids(fake: &FakeApi) -> Vec<String> {
    fake.get(PVC).unwrap()["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| r["uid"].as_str().unwrap().to_string())
        .collect()
}

fn pvc_patches(fake: &FakeApi) -> usize {
    fake.writes()
        .iter()
        .filter(|w| w.starts_with("PATCH") && w.contains("persistentvolumeclaims"))
        .count()
}

#[tokio::test]
async fn deleting_the_statefulset_keeps_the_claim_and_the_policy_decides_the_rest() {
    let (fake, ctx) = setup("storage: {size: 1Gi}");
    run(&fake, &ctx).await;
    let policy = fake.get(STS).unwrap()["spec"]["persistentVolumeClaimRetentionPolicy"].clone();
    assert_eq!(policy["whenDeleted"], "Retain", "{policy}");

    // Retain (the default): the claim has no owner reference to the
    // cluster, and the StatefulSet's own reference is kept.
    fake.put(PVC, claim("1Gi", "fast"));
    run(&fake, &ctx).await;
    assert_eq!(owner_uids(&fake), ["sts-uid"]);

    // Delete: the garbage collector removes the claim with the cluster.
    edit_spec(&fake, |s| s["storage"]["reclaimPolicy"] = json!("Delete"));
    run(&fake, &ctx).await;
    assert_eq!(owner_uids(&fake), ["sts-uid", "cluster-uid"]);
    let ours = &fake.get(PVC).unwrap()["metadata"]["ownerReferences"][1];
    assert_eq!(ours["kind"], "SqldCluster");
    assert_eq!(ours["controller"], false);
    fake.clear_log();
    run(&fake, &ctx).await;
    assert_eq!(
        pvc_patches(&fake),
        0,
        "nothing to change: {:?}",
        fake.writes()
    );

    // And back.
    edit_spec(&fake, |s| s["storage"]["reclaimPolicy"] = json!("Retain"));
    run(&fake, &ctx).await;
    assert_eq!(owner_uids(&fake), ["sts-uid"]);
}

#[tokio::test]
async fn growth_the_storage_class_cannot_make_is_reported_and_the_rest_goes_on() {
    let (fake, ctx) = setup("storage: {size: 1Gi}");
    classes(&fake);
    run(&fake, &ctx).await;
    children_ready(&fake);
    fake.put(PVC, claim("1Gi", "fixed"));
    run(&fake, &ctx).await;
    assert_eq!(condition(&fake, "StorageReady")["status"], "True");

    edit_spec(&fake, |s| {
        s["storage"]["size"] = json!("2Gi");
        s["image"] = json!("sqld:2");
    });
    fake.clear_log();
    run(&fake, &ctx).await;
    assert_eq!(pvc_patches(&fake), 0, "{:?}", fake.writes());
    let storage = condition(&fake, "StorageReady");
    assert_eq!(storage["status"], "False");
    assert_eq!(storage["reason"], "VolumeExpansionUnsupported");
    assert!(fake
        .events()
        .contains(&("Warning".into(), "VolumeExpansionUnsupported".into())));
    // The rest of the spec was applied and the generation observed.
    assert_eq!(image(&fake, DEPLOY), "sqld:2");
    assert_eq!(cluster(&fake).status.unwrap().observed_generation, Some(2));
    // No Warning storm: reported once while the reason stays.
    fake.clear_log();
    run(&fake, &ctx).await;
    assert!(fake.events().is_empty(), "{:?}", fake.events());
}

#[tokio::test]
async fn growth_the_api_server_refuses_is_reported_not_retried_as_an_error() {
    let (fake, ctx) = setup("storage: {size: 1Gi}");
    classes(&fake);
    run(&fake, &ctx).await;
    fake.put(PVC, claim("1Gi", "fast"));
    edit_spec(&fake, |s| s["storage"]["size"] = json!("2Gi"));
    fake.fail("PATCH", "persistentvolumeclaims", 403, 1);
    run(&fake, &ctx).await; // succeeds: the refusal is a condition
    assert_eq!(
        condition(&fake, "StorageReady")["reason"],
        "VolumeExpansionFailed"
    );

    // Next time it goes through, once.
    run(&fake, &ctx).await;
    assert_eq!(
        fake.get(PVC).unwrap()["spec"]["resources"]["requests"]["storage"],
        "2Gi"
    );
    assert_eq!(
        condition(&fake, "StorageReady")["reason"],
        "VolumeExpanding"
    );
    fake.clear_log();
    run(&fake, &ctx).await;
    assert_eq!(pvc_patches(&fake), 0, "the live claim already asks for 2Gi");
    assert!(!fake
        .events()
        .contains(&("Normal".into(), "VolumeExpansion".into())));
    fake.edit(PVC, |p| p["status"]["capacity"]["storage"] = json!("2Gi"));
    run(&fake, &ctx).await;
    assert_eq!(condition(&fake, "StorageReady")["reason"], "VolumeSized");
}

#[tokio::test]
async fn the_live_claim_templates_are_applied_as_they_are() {
    let (fake, ctx) = setup("storage: {size: 1Gi}");
    run(&fake, &ctx).await;
    // As an older operator (or the API server's defaulting) left them.
    fake.edit(STS, |s| {
        let t = &mut s["spec"]["volumeClaimTemplates"][0];
        t["metadata"]["labels"] = json!({"old": "label"});
        t["spec"]["volumeMode"] = json!("Filesystem");
        t["status"] = json!({"phase": "Pending"});
    });
    let live = fake.get(STS).unwrap()["spec"]["volumeClaimTemplates"].clone();
    edit_spec(&fake, |s| s["image"] = json!("sqld:2"));
    run(&fake, &ctx).await;
    let applied = fake.get(STS).unwrap()["spec"]["volumeClaimTemplates"].clone();
    assert_eq!(applied[0]["metadata"], live[0]["metadata"]);
    assert_eq!(applied[0]["spec"], live[0]["spec"]);
    assert!(applied[0].get("status").is_none());
}

#[tokio::test]
async fn objects_of_our_names_that_we_do_not_own_are_left_alone() {
    let (fake, ctx) = setup("replicas: 1");
    fake.serve(
        "monitoring.coreos.com/v1",
        &[
            ("PodMonitor", "podmonitors"),
            ("ServiceMonitor", "servicemonitors"),
        ],
    );
    let foreign = |api: &str, kind: &str, uid: &str| {
        json!({"apiVersion": api, "kind": kind, "metadata": {"name": "db", "uid": "x",
        "ownerReferences": [{"apiVersion": "v1", "kind": "Y", "name": "y", "uid": uid}]}})
    };
    let monitor = |uid: &str| foreign("monitoring.coreos.com/v1", "PodMonitor", uid);
    let pdb = |uid: &str| foreign("policy/v1", "PodDisruptionBudget", uid);
    fake.put(PODMONITOR, monitor("someone-else"));
    fake.put(PDB, pdb("someone-else"));
    run(&fake, &ctx).await;
    assert!(fake.get(PODMONITOR).is_some(), "a monitor we did not make");
    assert!(fake.get(PDB).is_some(), "a budget we did not make");
    assert!(!fake.writes().iter().any(|w| w.starts_with("DELETE")));

    fake.put(PODMONITOR, monitor("cluster-uid"));
    fake.put(PDB, pdb("cluster-uid"));
    run(&fake, &ctx).await;
    assert!(fake.get(PODMONITOR).is_none() && fake.get(PDB).is_none());
}
