//! Objects a cluster refers to but does not own outright: the credentials
//! Secret (the user's, or the one generated on first reconcile), the TLS
//! Secret and an existing FoundationDB cluster file. Resolving them yields
//! either problems (the spec cannot be realised yet) or the digest of what
//! the pods read, which enters the config hash so pods roll when a
//! referenced Secret changes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use kube::runtime::events::EventType;

use super::{apply::is_conflict, Context};
use crate::builders::{foundationdb, hash, secret, Credentials};
use crate::crd::{AuthMethod, SqldCluster};
use crate::error::Result;
use crate::validation::Problem;

/// Outcome of resolving a cluster's references.
pub struct Resolved {
    pub problems: Vec<Problem>,
    pub external_revision: String,
    /// Digest of where the replication token comes from and what it is.
    pub token_revision: String,
}

/// Checks (and where ours, creates) everything the pods will read.
pub async fn resolve(c: &SqldCluster, ctx: &Context, ns: &str) -> Result<Resolved> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let mut problems = Vec::new();
    let mut digest: Vec<(String, Vec<u8>)> = Vec::new();
    let mut token_revision = String::new();
    let auth = &c.spec.auth;

    let secret_name = secret::auth_secret_name(c);
    let auth_secret = match secrets.get_opt(&secret_name).await? {
        Some(s) => Some(s),
        None if auth.secret_name.is_none() => Some(create_credentials(c, ctx, &secrets).await?),
        None => {
            problems.push(problem(
                "AuthSecretNotFound",
                format!("Secret {secret_name} (spec.auth.secretName) does not exist"),
            ));
            None
        }
    };
    if let Some(s) = auth_secret {
        let data = secret_data(&s);
        if let Some(token) = data.get(&auth.replication_token_key) {
            token_revision = hash::digest_parts([
                ("secret", secret_name.as_bytes()),
                ("key", auth.replication_token_key.as_bytes()),
                ("token", token.as_slice()),
            ]);
        }
        let mut keys = vec![auth.replication_token_key.as_str()];
        if auth.method != AuthMethod::Trust {
            keys.push(auth.password_key.as_str());
        }
        // The user name is optional, but the pods read it: a change rolls them.
        if let Some(v) = data.get(secret::USERNAME_KEY) {
            digest.push((format!("auth/{}", secret::USERNAME_KEY), v.clone()));
        }
        for key in keys {
            match data.get(key) {
                Some(v) => digest.push((format!("auth/{key}"), v.clone())),
                None => problems.push(problem(
                    "AuthSecretIncomplete",
                    format!("Secret {secret_name} has no key {key}"),
                )),
            }
        }
    }

    if let Some(tls) = &c.spec.tls {
        match secrets.get_opt(&tls.secret_name).await? {
            None => problems.push(problem(
                "TLSSecretNotFound",
                format!(
                    "Secret {} (spec.tls.secretName) does not exist",
                    tls.secret_name
                ),
            )),
            Some(s) => {
                let data = secret_data(&s);
                for key in [&tls.cert_key, &tls.key_key] {
                    match data.get(key.as_str()) {
                        Some(v) => digest.push((format!("tls/{key}"), v.clone())),
                        None => problems.push(problem(
                            "TLSSecretIncomplete",
                            format!("Secret {} has no key {key}", tls.secret_name),
                        )),
                    }
                }
            }
        }
    }

    // The object store's keys. The primary reads the backup ones, so it
    // rolls when they change; the recovery ones are read once, before the
    // first start, and a later rotation restarts nothing.
    let backup = c.spec.backup.as_ref().and_then(|b| b.credentials.as_ref());
    let recovery = c
        .spec
        .bootstrap
        .as_ref()
        .and_then(|b| b.recovery.as_ref())
        .and_then(|r| r.credentials.as_ref());
    let stores = [
        (
            backup,
            "spec.backup.credentials",
            "BackupSecretNotFound",
            "BackupSecretIncomplete",
            true,
        ),
        (
            recovery,
            "spec.bootstrap.recovery.credentials",
            "RecoverySecretNotFound",
            "RecoverySecretIncomplete",
            false,
        ),
    ];
    for (creds, field, not_found, incomplete, hashed) in stores {
        let Some(creds) = creds else { continue };
        let Some(s) = secrets.get_opt(&creds.secret_name).await? else {
            problems.push(problem(
                not_found,
                format!(
                    "Secret {} ({field}.secretName) does not exist",
                    creds.secret_name
                ),
            ));
            continue;
        };
        let data = secret_data(&s);
        for key in [&creds.access_key_id_key, &creds.secret_access_key_key] {
            match data.get(key.as_str()) {
                Some(v) if hashed => digest.push((format!("backup/{key}"), v.clone())),
                Some(_) => {}
                None => problems.push(problem(
                    incomplete,
                    format!("Secret {} ({field}) has no key {key}", creds.secret_name),
                )),
            }
        }
    }

    // A cluster file the user points at must exist; its content is not
    // hashed (a mounted ConfigMap updates in place when coordinators change).
    let fdb = c.spec.backend.foundationdb.as_ref();
    if let Some(r) = fdb.and_then(|f| f.cluster_file.as_ref()) {
        let maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
        match maps.get_opt(&r.config_map_name).await? {
            None => problems.push(problem(
                "ClusterFileNotFound",
                format!(
                    "ConfigMap {} (backend.foundationdb.clusterFile) does not exist",
                    r.config_map_name
                ),
            )),
            Some(cm) if !cm.data.as_ref().is_some_and(|d| d.contains_key(&r.key)) => {
                problems.push(problem(
                    "ClusterFileNotFound",
                    format!("ConfigMap {} has no key {}", r.config_map_name, r.key),
                ))
            }
            Some(_) => {}
        }
    }
    if fdb.and_then(|f| f.managed.as_ref()).is_some() {
        let gv = format!("{}/{}", foundationdb::FDB_GROUP, foundationdb::FDB_VERSION);
        if !super::apply::serves_kind(&ctx.client, &gv, foundationdb::FDB_KIND).await? {
            problems.push(problem(
                "FoundationDBOperatorMissing",
                format!(
                    "{gv} FoundationDBCluster is not served: install the fdb-kubernetes-operator"
                ),
            ));
        }
    }

    let external_revision =
        hash::digest_parts(digest.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
    Ok(Resolved {
        problems,
        external_revision,
        token_revision,
    })
}

/// Creates the generated credentials Secret. Create, not apply: an existing
/// Secret (say, rotated by hand) is never overwritten.
async fn create_credentials(
    c: &SqldCluster,
    ctx: &Context,
    secrets: &Api<Secret>,
) -> Result<Secret> {
    let Some(secret) = secret::credentials_secret(c, &Credentials::generate()) else {
        return Err(crate::Error::MissingField("generated credentials"));
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(created) => {
            ctx.event(
                c,
                EventType::Normal,
                "CredentialsGenerated",
                "Create",
                format!(
                    "generated Secret {}",
                    crate::naming::credentials_secret_name(c)
                ),
            )
            .await;
            // The API server turns stringData into data; a response without
            // either still lets the caller hash what was sent.
            Ok(if created.data.is_some() {
                created
            } else {
                secret
            })
        }
        Err(e) if is_conflict(&e) => {
            let name = crate::naming::credentials_secret_name(c);
            Ok(secrets.get(&name).await?)
        }
        Err(e) => Err(e.into()),
    }
}

/// A Secret's values, whether stored as `data` or (not yet converted)
/// `stringData`.
fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = s
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    for (k, v) in s.string_data.clone().unwrap_or_default() {
        out.entry(k).or_insert_with(|| v.into_bytes());
    }
    out
}

fn problem(reason: &'static str, message: String) -> Problem {
    Problem { reason, message }
}
