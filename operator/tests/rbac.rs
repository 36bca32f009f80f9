//! The RBAC manifests in `deploy/operator/` are generated from
//! `operator/src/rbac.rs`; this fails when they are stale. (That every API
//! request of the reconciler is covered by those rules, and nothing more,
//! is checked in `reconcile.rs`.)

use std::path::PathBuf;

use sqld_operator::rbac;

fn check(path: &str, generated: String) {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    if std::env::var_os("UPDATE_RBAC").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{path} is stale: run UPDATE_RBAC=1 cargo test -p sqld-operator --test rbac"
    );
}

#[test]
fn cluster_rbac_is_up_to_date() {
    check(
        "deploy/operator/rbac.yaml",
        rbac::cluster_manifests(rbac::DEFAULT_NAMESPACE).unwrap(),
    );
}

#[test]
fn namespaced_rbac_is_up_to_date() {
    check(
        "deploy/operator/namespaced/rbac.yaml",
        rbac::namespaced_manifests(rbac::DEFAULT_NAMESPACE).unwrap(),
    );
}

#[test]
fn request_attributes() {
    let a = |m, p| rbac::request_attributes(m, p).map(|(g, r, v)| format!("{g}/{r}/{v}"));
    assert_eq!(
        a("GET", "/api/v1/namespaces/x/secrets/s").as_deref(),
        Some("/secrets/get")
    );
    assert_eq!(
        a(
            "PATCH",
            "/apis/sqld.dev/v1alpha1/namespaces/x/sqldclusters/c/status"
        )
        .as_deref(),
        Some("sqld.dev/sqldclusters/status/patch")
    );
    assert_eq!(
        a("GET", "/apis/apps/v1/statefulsets").as_deref(),
        Some("apps/statefulsets/list")
    );
    assert_eq!(
        a("POST", "/apis/events.k8s.io/v1/namespaces/x/events").as_deref(),
        Some("events.k8s.io/events/create")
    );
    assert_eq!(a("GET", "/apis/monitoring.coreos.com/v1"), None);
    assert_eq!(a("GET", "/version"), None);
}

#[test]
fn no_wildcards_and_no_secret_listing() {
    for r in rbac::rules() {
        assert!(!r.verbs.contains(&"*") && !r.resources.contains(&"*"));
        if r.resources.contains(&"secrets") {
            assert!(
                !r.verbs.contains(&"list") && !r.verbs.contains(&"watch"),
                "reading all Secrets is not needed"
            );
        }
    }
}

#[test]
fn chart_rbac_is_up_to_date() {
    check(
        "charts/sqld-operator/files/rbac-rules.yaml",
        rbac::chart_rules().unwrap(),
    );
}
