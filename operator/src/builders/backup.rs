//! What backup and recovery add to the primary's pod: sqld's `--backup-*`
//! flags, the object store's credentials as the AWS_* variables sqld reads,
//! and the init container that restores a new cluster from a backup.

use k8s_openapi::api::core::v1::{Container, EnvVar};

use super::pod::{plain_env, secret_env};
use crate::crd::{SqldCluster, StoreCredentials};
use crate::naming;

/// Name of the init container that restores the database.
pub const RESTORE_CONTAINER_NAME: &str = "restore";

/// sqld flags of the primary for `spec.backup` (none without it).
pub fn backup_args(c: &SqldCluster) -> Vec<String> {
    let Some(b) = &c.spec.backup else {
        return Vec::new();
    };
    let mut args = vec!["--backup-url".to_string(), b.destination.clone()];
    if let Some(v) = &b.interval {
        args.extend(["--backup-interval".to_string(), v.clone()]);
    }
    if let Some(v) = b.generation_frames {
        args.extend(["--backup-generation-frames".to_string(), v.to_string()]);
    }
    if let Some(v) = &b.retention {
        args.extend(["--backup-retention".to_string(), v.clone()]);
    }
    args
}

/// The store's settings as the environment sqld's object store reads: the
/// keys from the Secret by reference, the endpoint settings as values.
pub fn store_env(creds: Option<&StoreCredentials>) -> Vec<EnvVar> {
    let Some(s) = creds else {
        return Vec::new();
    };
    let mut env = vec![
        secret_env("AWS_ACCESS_KEY_ID", &s.secret_name, &s.access_key_id_key),
        secret_env(
            "AWS_SECRET_ACCESS_KEY",
            &s.secret_name,
            &s.secret_access_key_key,
        ),
    ];
    if let Some(v) = &s.endpoint {
        env.push(plain_env("AWS_ENDPOINT_URL", v.clone()));
    }
    if let Some(v) = &s.region {
        env.push(plain_env("AWS_REGION", v.clone()));
    }
    if let Some(v) = s.allow_http {
        env.push(plain_env("AWS_ALLOW_HTTP", v.to_string()));
    }
    env
}

/// `sqld restore`'s command line for `spec.bootstrap.recovery`. With
/// `--if-empty` it restores nothing, successfully, when the data directory
/// already holds a database (`<db-path>/data.db`): a restart after a
/// restore, or a volume that outlived an earlier cluster, keeps its data
/// and starts. An interrupted restore leaves only `<db-path>.restoring`,
/// which the next run discards and builds again.
pub fn restore_args(c: &SqldCluster) -> Option<Vec<String>> {
    let r = c.spec.bootstrap.as_ref()?.recovery.as_ref()?;
    let mut args = vec![
        "restore".to_string(),
        "--if-empty".to_string(),
        "--from".to_string(),
        r.source.clone(),
        "--db-path".to_string(),
        naming::DB_PATH.to_string(),
    ];
    // One argument: a bare RFC 3339 value reads as a timestamp, not a
    // string, to YAML 1.1 tools handling the rendered manifest.
    if let Some(t) = &r.to_time {
        args.push(format!("--to-time={t}"));
    }
    if let Some(n) = r.to_frame {
        args.extend(["--to-frame".to_string(), n.to_string()]);
    }
    Some(args)
}

/// The restore init container: the sqld image, the data volume and the
/// source's credentials; everything else (security, resources, pull
/// policy) as the sqld container has it.
pub fn restore_container(c: &SqldCluster, sqld: &Container) -> Option<Container> {
    let args = restore_args(c)?;
    let recovery = c.spec.bootstrap.as_ref()?.recovery.as_ref()?;
    let mounts = sqld.volume_mounts.as_ref().map(|m| {
        m.iter()
            .filter(|m| m.name == naming::DATA_VOLUME || m.name == "tmp")
            .cloned()
            .collect()
    });
    let env = store_env(recovery.credentials.as_ref());
    Some(Container {
        name: RESTORE_CONTAINER_NAME.to_string(),
        image: sqld.image.clone(),
        image_pull_policy: sqld.image_pull_policy.clone(),
        args: Some(args),
        env: (!env.is_empty()).then_some(env),
        resources: sqld.resources.clone(),
        volume_mounts: mounts,
        security_context: sqld.security_context.clone(),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Container::default()
    })
}
