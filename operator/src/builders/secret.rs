//! The generated credentials Secret: a random password and replication
//! token, created once when `spec.auth.secretName` is absent. The reconciler
//! creates it only if missing and never applies it again, so rotating the
//! values by hand sticks.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use rand::distr::{Alphanumeric, SampleString};

use crate::crd::SqldCluster;
use crate::naming;

/// Key of the (optional) user name in a credentials Secret.
pub const USERNAME_KEY: &str = "username";
/// sqld's default user, written into generated Secrets for clients.
pub const DEFAULT_USER: &str = "sqld";

/// Length of generated secrets: 32 alphanumerics, about 190 bits.
const GENERATED_LEN: usize = 32;

/// Values of a generated credentials Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub password: String,
    pub replication_token: String,
}

impl Credentials {
    /// Fresh random credentials.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        Credentials {
            password: Alphanumeric.sample_string(&mut rng, GENERATED_LEN),
            replication_token: Alphanumeric.sample_string(&mut rng, GENERATED_LEN),
        }
    }
}

/// Name of the Secret the pods read credentials from: the user's, or the
/// generated one.
pub fn auth_secret_name(c: &SqldCluster) -> String {
    c.spec
        .auth
        .secret_name
        .clone()
        .unwrap_or_else(|| naming::credentials_secret_name(c))
}

/// The generated Secret, or `None` when the user brings their own.
pub fn credentials_secret(c: &SqldCluster, creds: &Credentials) -> Option<Secret> {
    if c.spec.auth.secret_name.is_some() {
        return None;
    }
    let auth = &c.spec.auth;
    Some(Secret {
        metadata: naming::child_meta(
            c,
            naming::credentials_secret_name(c),
            naming::cluster_labels(c),
        ),
        type_: Some("Opaque".to_string()),
        string_data: Some(BTreeMap::from([
            (USERNAME_KEY.to_string(), DEFAULT_USER.to_string()),
            (auth.password_key.clone(), creds.password.clone()),
            (
                auth.replication_token_key.clone(),
                creds.replication_token.clone(),
            ),
        ])),
        ..Secret::default()
    })
}
