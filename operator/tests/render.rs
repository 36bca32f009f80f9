//! Snapshot tests of `render` for every example in `deploy/examples/`: the
//! output is compared with `operator/tests/snapshots/<example>.yaml`, so any
//! change to what the operator creates shows up in review as a diff.
//! Regenerate with `UPDATE_SNAPSHOTS=1 cargo test -p sqld-operator --test render`.

use std::path::PathBuf;
use std::process::Command;

use sqld_operator::builders::Credentials;
use sqld_operator::render::{parse_clusters, render_yaml};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Fixed values so snapshots are stable (the real ones are random).
fn fixed() -> Credentials {
    Credentials {
        password: "snapshot-password".into(),
        replication_token: "snapshot-token".into(),
    }
}

#[test]
fn examples_match_snapshots() {
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let snapshots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let mut names: Vec<_> = std::fs::read_dir(root().join("deploy/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    names.sort();
    assert_eq!(
        names.len(),
        7,
        "minimal, sqldcluster, replicas, tls, foundationdb, backup, recovery"
    );
    let mut stale = Vec::new();
    for path in names {
        let rendered = render_yaml(&std::fs::read_to_string(&path).unwrap(), fixed).unwrap();
        let snap = snapshots.join(path.file_name().unwrap());
        if update {
            std::fs::create_dir_all(&snapshots).unwrap();
            std::fs::write(&snap, &rendered).unwrap();
        }
        if std::fs::read_to_string(&snap).unwrap_or_default() != rendered {
            stale.push(snap.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "render output changed for {stale:?}; review and run with UPDATE_SNAPSHOTS=1"
    );
}

#[test]
fn render_lists_every_kind_in_apply_order() {
    let text = std::fs::read_to_string(root().join("deploy/examples/replicas.yaml")).unwrap();
    let out = render_yaml(&text, fixed).unwrap();
    let kinds: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect();
    assert_eq!(
        kinds,
        [
            "Secret",
            "Service",
            "Service",
            "Service",
            "Service",
            "NetworkPolicy",
            "Deployment",
            "StatefulSet",
            "PodDisruptionBudget",
            "PodMonitor"
        ]
    );
    let text = std::fs::read_to_string(root().join("deploy/examples/foundationdb.yaml")).unwrap();
    let out = render_yaml(&text, fixed).unwrap();
    assert!(out.contains("kind: FoundationDBCluster"));
}

#[test]
fn render_skips_other_documents_and_rejects_bad_specs() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\napiVersion: sqld.dev/v1alpha1\nkind: SqldCluster\nmetadata: {name: a}\nspec: {}\n";
    assert_eq!(parse_clusters(text).unwrap().len(), 1);
    let bad = "apiVersion: sqld.dev/v1alpha1\nkind: SqldCluster\nmetadata: {name: a}\nspec: {extraArgs: ['--primary-url=http://x']}\n";
    let err = render_yaml(bad, fixed).unwrap_err().to_string();
    assert!(err.contains("ReservedFlag"), "{err}");
    assert!(render_yaml(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n",
        fixed
    )
    .is_err());
    let typo = "apiVersion: sqld.dev/v1alpha1\nkind: SqldCluster\nmetadata: {name: a}\nspec: {replicas: many}\n";
    assert!(render_yaml(typo, fixed).is_err());
}

#[test]
fn binary_renders_and_prints_the_crd() {
    let bin = env!("CARGO_BIN_EXE_sqld-operator");
    let out = Command::new(bin)
        .args(["render", "-f"])
        .arg(root().join("deploy/examples/minimal.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("name: minimal-primary"));
    let out = Command::new(bin).arg("crd").output().unwrap();
    assert!(out.status.success());
    let crd = std::fs::read_to_string(root().join("crds/sqld.dev_sqldclusters.yaml")).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), crd);
    let out = Command::new(bin)
        .args(["render", "-f", "/nonexistent.yaml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn strings_a_yaml_1_1_reader_would_retype_are_quoted() {
    let text = "apiVersion: sqld.dev/v1alpha1\nkind: SqldCluster\nmetadata: {name: q}\nspec:\n  podLabels: {a: 'yes', b: 'on', c: '1_000', d: 'N', e: '1:20', f: plain, 'on': x}\n  podAnnotations: {multi: \"line one\\non: two\\n\", lead: \"  lead\\non: y\\n\"}\n";
    let out = render_yaml(text, fixed).unwrap();
    for want in [
        "a: 'yes'",
        "b: 'on'",
        "c: '1_000'",
        "d: 'N'",
        "e: '1:20'",
        "f: plain",
        "'on': x",
    ] {
        assert!(out.contains(want), "{want} missing in\n{out}");
    }
    // Values are unchanged for a YAML 1.2 reader, and block scalars untouched.
    let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&out)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let sts = docs.iter().find(|d| d["kind"] == "StatefulSet").unwrap();
    let meta = &sts["spec"]["template"]["metadata"];
    assert_eq!(meta["labels"]["a"], "yes");
    assert_eq!(meta["labels"]["on"], "x");
    assert_eq!(meta["annotations"]["multi"], "line one\non: two\n");
    assert_eq!(meta["annotations"]["lead"], "  lead\non: y\n");
}
