//! The config hash written on pod templates. It covers the rendered pod
//! template and an external revision (a digest of the referenced Secrets and
//! ConfigMaps, supplied by the reconciler), so pods roll when anything they
//! read changes, and only then: nothing about the operator's own version
//! enters it, so upgrading the operator leaves database pods alone unless
//! their template really changed.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use sha2::{Digest, Sha256};

/// Hex digits of the digest kept in the annotation.
const HASH_LEN: usize = 16;

/// Digest of a pod template (without its hash annotation) and the external
/// revision. Stable across runs: serde_json writes struct fields in
/// declaration order and maps in key order (BTreeMap).
pub fn config_hash(template: &PodTemplateSpec, external_revision: &str) -> String {
    let mut hasher = Sha256::new();
    // A template always serializes; an empty input would still hash.
    hasher.update(serde_json::to_vec(template).unwrap_or_default());
    hasher.update([0u8]);
    hasher.update(external_revision.as_bytes());
    hex(&hasher.finalize())[..HASH_LEN].to_string()
}

/// Digest of arbitrary named parts, used for the external revision.
pub fn digest_parts<'a>(parts: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut hasher = Sha256::new();
    for (name, bytes) in parts {
        hasher.update(name.as_bytes());
        hasher.update([0u8]);
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    }
    hex(&hasher.finalize())[..HASH_LEN].to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
