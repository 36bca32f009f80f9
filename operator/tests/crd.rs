//! The generated CRD: `crds/` must match the Rust types, the resource must
//! have the names, subresources and columns users rely on, and the CEL
//! rules must accept the examples and reject what they are meant to reject
//! (evaluated locally with kube's CEL evaluator).

use std::path::PathBuf;

use kube::core::cel::{validate_cel, validate_cel_update};
use kube::CustomResourceExt;
use sqld_operator::crd::{self, SqldCluster};
use sqld_operator::render::parse_clusters;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

const CRD_PATH: &str = "crds/sqld.dev_sqldclusters.yaml";
/// The Helm chart ships the same file (Helm installs `crds/` before the
/// templates and never deletes it).
const CHART_CRD_PATH: &str = "charts/sqld-operator/files/crds/sqld.dev_sqldclusters.yaml";

#[test]
fn crd_file_is_up_to_date() {
    let generated = crd::crd_yaml().unwrap();
    for file in [CRD_PATH, CHART_CRD_PATH] {
        let path = root().join(file);
        if std::env::var_os("UPDATE_CRDS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &generated).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "{file} is stale: run `sqld-operator crd > {file}` (or UPDATE_CRDS=1 cargo test -p sqld-operator --test crd)"
        );
    }
}

#[test]
fn crd_names_scope_and_subresources() {
    let crd = SqldCluster::crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("sqldclusters.sqld.dev"));
    assert_eq!(crd.spec.group, "sqld.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "SqldCluster");
    assert_eq!(crd.spec.names.short_names, Some(vec!["sqld".to_string()]));
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    assert!(v.served && v.storage);
    let sub = v.subresources.as_ref().unwrap();
    assert!(sub.status.is_some());
    let scale = sub.scale.as_ref().unwrap();
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );
    let columns: Vec<&str> = v
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        ["Ready", "Replicas", "Ready Replicas", "Phase", "Age"]
    );
}

#[test]
fn schema_defaults_image_and_bounds_replicas() {
    let crd = serde_json::to_value(SqldCluster::crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["properties"]["image"]["default"], crd::DEFAULT_IMAGE);
    assert_eq!(spec["properties"]["replicas"]["minimum"], 0.0);
    assert_eq!(
        spec["properties"]["storage"]["properties"]["size"]["default"],
        "1Gi"
    );
    let status = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
    assert_eq!(
        status["properties"]["conditions"]["x-kubernetes-list-type"],
        "map"
    );
}

fn example(name: &str) -> SqldCluster {
    let text = std::fs::read_to_string(root().join("deploy/examples").join(name)).unwrap();
    parse_clusters(&text).unwrap().remove(0)
}

fn from_yaml(y: &str) -> SqldCluster {
    serde_yaml::from_str(y).unwrap()
}

#[test]
fn examples_pass_the_cel_rules() {
    let dir = root().join("deploy/examples");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for c in parse_clusters(&text).unwrap() {
            n += 1;
            if let Err(e) = validate_cel(&c) {
                panic!("{}: {e:?}", path.display());
            }
        }
    }
    assert_eq!(n, 7, "one SqldCluster per example");
}

#[test]
fn cel_rejects_cross_field_mistakes() {
    let cases = [
        ("foundationdb without settings", "spec: {backend: {type: foundationdb}}"),
        ("local with foundationdb settings", "spec: {backend: {type: local, foundationdb: {connectionString: 'a:b@c:1'}}}"),
        ("two cluster file sources", "spec: {backend: {type: foundationdb, foundationdb: {connectionString: 'a:b@c:1', clusterFile: {configMapName: x}}}}"),
        ("storage size not a quantity", "spec: {storage: {size: lots}}"),
        ("cleartext passwords without TLS", "spec: {auth: {method: cleartext}}"),
        ("recovery to a time and a frame", "spec: {bootstrap: {recovery: {source: 's3://b', toTime: '2026-12-02T01:30:00Z', toFrame: 3}}}"),
    ];
    for (what, spec) in cases {
        let c = from_yaml(&format!(
            "apiVersion: sqld.dev/v1alpha1\nkind: SqldCluster\nmetadata: {{name: x}}\n{spec}"
        ));
        assert!(validate_cel(&c).is_err(), "CEL accepted {what}");
    }
    let long = from_yaml(&format!(
        "apiVersion: sqld.dev/v1alpha1\nkind: SqldCluster\nmetadata: {{name: {}}}\nspec: {{}}",
        "a".repeat(45)
    ));
    assert!(
        validate_cel(&long).is_err(),
        "CEL accepted a 45-character name"
    );
}

#[test]
fn cel_lets_storage_grow_but_not_shrink() {
    let old = example("replicas.yaml");
    let mut grown = old.clone();
    grown.spec.storage.size = "40Gi".into();
    assert!(validate_cel_update(&grown, &old).is_ok());
    let mut shrunk = old.clone();
    shrunk.spec.storage.size = "10Gi".into();
    assert!(validate_cel_update(&shrunk, &old).is_err());
    let mut same_in_other_unit = old.clone();
    same_in_other_unit.spec.storage.size = "20480Mi".into();
    assert!(validate_cel_update(&same_in_other_unit, &old).is_ok());
}

#[test]
fn cel_makes_backend_type_and_storage_class_immutable() {
    let old = example("replicas.yaml");
    let mut class = old.clone();
    class.spec.storage.storage_class_name = Some("fast".into());
    assert!(validate_cel_update(&class, &old).is_err());

    let fdb = example("foundationdb.yaml");
    let mut local = fdb.clone();
    local.spec.backend = Default::default();
    assert!(validate_cel_update(&local, &fdb).is_err());

    let mut scaled = old.clone();
    scaled.spec.replicas = 5;
    assert!(validate_cel_update(&scaled, &old).is_ok());
}

#[test]
fn cel_and_the_operator_require_a_dns_1035_name() {
    for (name, ok) in [
        ("db", true),
        ("my-db-2", true),
        ("my.db", false),
        ("2db", false),
        ("db-", false),
        ("Db", false),
    ] {
        let c = from_yaml(&format!(
            "apiVersion: sqld.dev/v1alpha1\nkind: SqldCluster\nmetadata: {{name: '{name}'}}\nspec: {{}}"
        ));
        assert_eq!(validate_cel(&c).is_ok(), ok, "CEL on {name:?}");
        let reasons: Vec<_> = sqld_operator::validation::check(&c)
            .iter()
            .map(|p| p.reason)
            .collect();
        assert_eq!(
            !reasons.contains(&"InvalidName"),
            ok,
            "operator on {name:?}: {reasons:?}"
        );
    }
}

#[test]
fn bootstrap_is_immutable() {
    let old = example("recovery.yaml");
    assert!(validate_cel_update(&old.clone(), &old).is_ok());
    let mut later = old.clone();
    let recovery = later
        .spec
        .bootstrap
        .as_mut()
        .unwrap()
        .recovery
        .as_mut()
        .unwrap();
    recovery.to_time = Some("2026-12-02T02:00:00Z".into());
    assert!(
        validate_cel_update(&later, &old).is_err(),
        "a new restore point after creation"
    );
}
