//! `sqld-operator render`: every object the operator would create for the
//! SqldClusters in a file, printed as YAML, with no cluster involved. It
//! reuses the builders the reconciler applies, so what it prints is what
//! the operator does; the only differences are that a cluster read from a
//! file has no UID (owner references carry a placeholder), and generated
//! credentials are freshly random (the real ones are made once, on creation).

use serde::Deserialize;

use crate::builders::{self, Credentials, Inputs};
use crate::crd::SqldCluster;
use crate::error::{Error, Result};
use crate::validation;

/// Parses every `SqldCluster` document of a (multi-document) YAML text;
/// documents of other kinds are skipped.
pub fn parse_clusters(yaml: &str) -> Result<Vec<SqldCluster>> {
    let mut clusters = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_yaml::Value::deserialize(doc)?;
        if value.is_null() {
            continue;
        }
        if value.get("kind").and_then(|k| k.as_str()) != Some("SqldCluster") {
            continue;
        }
        clusters.push(serde_yaml::from_value(value)?);
    }
    Ok(clusters)
}

/// The objects of one cluster as JSON values, after checking its spec.
pub fn render_cluster(c: &SqldCluster, credentials: Credentials) -> Result<Vec<serde_json::Value>> {
    let problems = validation::check(c);
    if !problems.is_empty() {
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(Error::InvalidSpec(text.join("; ")));
    }
    let inputs = Inputs {
        external_revision: String::new(),
        credentials: Some(credentials),
        ..Inputs::default()
    };
    Ok(builders::children(c, &inputs).to_values()?)
}

/// The multi-document YAML `render` prints for a file's text.
pub fn render_yaml(yaml: &str, credentials: impl Fn() -> Credentials) -> Result<String> {
    let clusters = parse_clusters(yaml)?;
    if clusters.is_empty() {
        return Err(Error::InvalidSpec("no SqldCluster in input".to_string()));
    }
    let mut out = String::new();
    for c in &clusters {
        for obj in render_cluster(c, credentials())? {
            out.push_str("---\n");
            out.push_str(&serde_yaml::to_string(&obj)?);
        }
    }
    Ok(out)
}
