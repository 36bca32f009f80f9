//! The operator's `render` path fed arbitrary YAML (or JSON, which YAML
//! includes): parsing into `SqldCluster`s, the spec checks, every builder.
//! Any input must render or be rejected with an error; a panic is a
//! finding. What renders must be a list of complete objects: each one with
//! an apiVersion, a kind and a name, or `kubectl apply` would refuse it.
//!
//! Shared by the fuzz target (`fuzz_targets/operator_spec.rs`) and the
//! corpus replay test (`operator/tests/fuzz_corpus.rs`).

use serde::Deserialize;
use sqld_operator::builders::Credentials;
use sqld_operator::render::render_yaml;

/// Fixed credentials, so a finding reproduces byte for byte.
fn credentials() -> Credentials {
    Credentials {
        password: "fuzz-password".to_string(),
        replication_token: "fuzz-token".to_string(),
    }
}

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rendered) = render_yaml(text, credentials) else {
        return;
    };
    // Read back as the multi-document YAML it is (a value may itself
    // contain "---", so no splitting on text).
    let mut count = 0;
    for doc in serde_yaml::Deserializer::from_str(&rendered) {
        let obj = match serde_yaml::Value::deserialize(doc) {
            Ok(v) => v,
            Err(e) => panic!("rendered output is not YAML ({e}):\n{rendered}"),
        };
        if obj.is_null() {
            continue;
        }
        count += 1;
        let text = serde_yaml::to_string(&obj).unwrap_or_default();
        for field in ["apiVersion", "kind"] {
            assert!(
                obj.get(field)
                    .and_then(|v| v.as_str())
                    .is_some_and(|s| !s.is_empty()),
                "rendered object without {field}:\n{text}"
            );
        }
        let name = obj
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str());
        assert!(
            name.is_some_and(|n| !n.is_empty()),
            "rendered object without a name:\n{text}"
        );
    }
    assert!(count > 0, "render succeeded with no object");
}
