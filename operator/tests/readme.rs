//! The field reference in `operator/README.md` is generated from the CRD's
//! schema; this fails when it is stale (regenerate with
//! `UPDATE_README=1 cargo test -p sqld-operator --test readme`).

use std::path::PathBuf;

use kube::CustomResourceExt;
use serde_json::Value;
use sqld_operator::crd::SqldCluster;

const BEGIN: &str = "<!-- fields:begin (generated from the CRD schema; do not edit) -->";
const END: &str = "<!-- fields:end -->";

/// Fields whose type is a Kubernetes core type: documented by Kubernetes.
const CORE_TYPES: &[&str] = &[
    "spec.imagePullSecrets",
    "spec.resources",
    "spec.primaryResources",
    "spec.replicaResources",
    "spec.tolerations",
    "spec.affinity",
    "spec.topologySpreadConstraints",
    "spec.env",
];

fn type_of(s: &Value) -> String {
    let t = s["type"].as_str().unwrap_or("object");
    match t {
        "array" => format!("[]{}", type_of(&s["items"])),
        "object" if s.get("additionalProperties").is_some() => "map[string]string".into(),
        t => t.to_string(),
    }
}

fn one_line(s: &str) -> String {
    let first = s.split("\n\n").next().unwrap_or("");
    first
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn walk(path: &str, s: &Value, rows: &mut Vec<String>) {
    let Some(props) = s["properties"].as_object() else {
        return;
    };
    let required: Vec<&str> = s["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, p) in props {
        let full = format!("{path}.{name}");
        let mut ty = type_of(p);
        if CORE_TYPES.contains(&full.as_str()) {
            ty = format!("{ty} (Kubernetes core type)");
        }
        if let Some(values) = p["enum"].as_array() {
            let v: Vec<String> = values
                .iter()
                .filter_map(Value::as_str)
                .map(|v| format!("`{v}`"))
                .collect();
            ty = v.join(", ");
        }
        let mut notes = Vec::new();
        if required.contains(&name.as_str()) {
            notes.push("required".to_string());
        }
        if let Some(min) = p["minimum"].as_f64() {
            notes.push(format!("min {min}"));
        }
        if let Some(max) = p["maximum"].as_f64() {
            notes.push(format!("max {max}"));
        }
        if let Some(pat) = p["pattern"].as_str() {
            notes.push(format!("pattern `{}`", pat.replace('|', "\\|")));
        }
        let default = match &p["default"] {
            Value::Null => String::new(),
            Value::Object(_) => String::new(),
            Value::String(s) => format!("`{s}`"),
            v => format!("`{v}`"),
        };
        let desc = one_line(p["description"].as_str().unwrap_or(""));
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join(", "))
        };
        rows.push(format!("| `{full}` | {ty} | {default} | {desc}{notes} |"));
        if !CORE_TYPES.contains(&full.as_str()) && p["type"] == "object" {
            walk(&full, p, rows);
        }
    }
}

fn reference() -> String {
    let crd = serde_json::to_value(SqldCluster::crd()).unwrap();
    let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    let mut out = String::from(BEGIN);
    for (part, title) in [("spec", "Spec"), ("status", "Status")] {
        let mut rows = Vec::new();
        walk(part, &root[part], &mut rows);
        out.push_str(&format!(
            "\n\n### {title}\n\n| Field | Type | Default | Description |\n|---|---|---|---|\n"
        ));
        out.push_str(&rows.join("\n"));
    }
    out.push_str("\n\n");
    out.push_str(END);
    out
}

#[test]
fn readme_field_reference_matches_the_schema() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
        panic!("README.md lacks the field reference markers");
    };
    let current = &text[b..e + END.len()];
    let generated = reference();
    if std::env::var_os("UPDATE_README").is_some() {
        std::fs::write(&path, text.replace(current, &generated)).unwrap();
        return;
    }
    assert!(current == generated, "README field reference is stale: UPDATE_README=1 cargo test -p sqld-operator --test readme");
}
