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
            out.push_str(&quote_yaml11_ambiguities(&serde_yaml::to_string(&obj)?));
        }
    }
    Ok(out)
}

/// Quotes the plain scalars that YAML 1.2 (serde_yaml) reads as strings but
/// YAML 1.1 readers (kubectl's, PyYAML) turn into something else: `yes`,
/// `on`, `y` and kin become booleans, `1_000` and `1:20` numbers. The
/// API server would then refuse the object or store another value. Every
/// such scalar serde_yaml writes unquoted is a string (it writes booleans
/// as `true`/`false` and numbers without separators), so quoting keeps the
/// value. Lines inside block scalars (`|`) are content and stay as they are.
pub fn quote_yaml11_ambiguities(yaml: &str) -> String {
    let mut out = String::with_capacity(yaml.len());
    let mut block_indent: Option<usize> = None;
    for line in yaml.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(b) = block_indent {
            if line.trim().is_empty() || indent > b {
                out.push_str(line);
                out.push('\n');
                continue;
            }
            block_indent = None;
        }
        let fixed = quote_line(line, indent);
        if opens_block_scalar(&fixed) {
            block_indent = Some(indent);
        }
        out.push_str(&fixed);
        out.push('\n');
    }
    out
}

/// Whether a line ends in a block scalar header (`|`, `|-`, `>+`, `|2-`...).
fn opens_block_scalar(line: &str) -> bool {
    let last = line.trim_end().rsplit(' ').next().unwrap_or("");
    last.starts_with(['|', '>'])
        && last[1..]
            .bytes()
            .all(|b| b == b'-' || b == b'+' || b.is_ascii_digit())
}

/// One `key: value`, `- value` or `- key: value` line, with its ambiguous
/// plain key and value quoted.
fn quote_line(line: &str, indent: usize) -> String {
    let (head, mut rest) = line.split_at(indent);
    let mut out = head.to_string();
    while let Some(r) = rest.strip_prefix("- ") {
        out.push_str("- ");
        rest = r;
    }
    match rest.split_once(": ") {
        Some((k, v)) => {
            out.push_str(&quote_scalar(k));
            out.push_str(": ");
            out.push_str(&quote_scalar(v));
        }
        None => match rest.strip_suffix(':') {
            Some(k) => {
                out.push_str(&quote_scalar(k));
                out.push(':');
            }
            None => out.push_str(&quote_scalar(rest)),
        },
    }
    out
}

fn quote_scalar(s: &str) -> String {
    if is_yaml11_ambiguous(s) {
        format!("'{s}'")
    } else {
        s.to_string()
    }
}

/// A plain scalar a YAML 1.1 reader does not take as a string.
fn is_yaml11_ambiguous(s: &str) -> bool {
    const BOOLS: &[&str] = &["y", "n", "yes", "no", "on", "off"];
    if BOOLS.contains(&s.to_ascii_lowercase().as_str()) {
        return true;
    }
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let numeric = |t: &str| {
        !t.is_empty()
            && t.starts_with(|ch: char| ch.is_ascii_digit())
            && t.bytes()
                .all(|b| b.is_ascii_digit() || b == b'_' || b == b'.')
    };
    // 1_000, 1_0.5 (underscored numbers); 1:20, 190:20:30 (base 60).
    (numeric(body) && body.contains('_'))
        || (body.contains(':')
            && body
                .split(':')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit() || b == b'_')))
}
