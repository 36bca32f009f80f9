//! Reconciles that meet trouble: invalid specs and missing Secrets become
//! status and Events, API errors fail with exponential backoff, volumes
//! grow but never shrink.

mod fake;
mod fixtures;

use std::sync::Arc;
use std::time::Duration;

use fake::scenario::*;
use fake::FakeApi;
use kube::runtime::controller::Action;
use serde_json::json;
use sqld_operator::controller::{error_policy, reconcile};
use sqld_operator::crd::Phase;

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
async fn a_spec_problem_keeps_the_conditions_of_the_optional_parts() {
    let (fake, ctx) = setup("{monitoring: {enabled: true}}");
    run(&fake, &ctx).await;
    assert_eq!(
        condition(&fake, "MonitoringReady")["reason"],
        "CRDNotInstalled"
    );
    edit_spec(&fake, |s| s["extraArgs"] = json!(["--db-path=/x"]));
    run(&fake, &ctx).await;
    assert_eq!(condition(&fake, "Ready")["reason"], "ReservedFlag");
    assert_eq!(
        condition(&fake, "MonitoringReady")["reason"],
        "CRDNotInstalled"
    );
    assert_eq!(condition(&fake, "BackendReady")["status"], "True");
}

#[tokio::test]
async fn a_changed_user_name_rolls_the_pods() {
    let (fake, ctx) = setup("{}");
    run(&fake, &ctx).await;
    let hash = |f: &FakeApi| {
        f.get(STS).unwrap()["spec"]["template"]["metadata"]["annotations"]["sqld.dev/config-hash"]
            .clone()
    };
    let before = hash(&fake);
    fake.edit(SECRET, |s| s["data"]["username"] = json!("YWRtaW4="));
    run(&fake, &ctx).await;
    assert_ne!(hash(&fake), before, "SQLD_USER comes from that key");
}
