//! The backup store: an `object_store` bucket (or directory) and a prefix,
//! opened from `--backup-url`. `s3://bucket/prefix` is any S3-compatible
//! store, configured from the usual AWS variables (`AWS_ENDPOINT_URL`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ALLOW_HTTP`); `file:///path` is a local directory.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::naming::ObjectName;
use super::BackupError;

/// Requests the client itself retries before the archiver's own, slower,
/// back-off takes over (which never gives up).
const CLIENT_RETRIES: usize = 2;
const CLIENT_RETRY_TIMEOUT: Duration = Duration::from_secs(10);
/// A store that accepts a connection and then says nothing must not hold
/// an upload forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct BackupStore {
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    url: String,
}

impl std::fmt::Debug for BackupStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl BackupStore {
    pub fn open(url: &str) -> Result<Self, BackupError> {
        let bad = |message: String| BackupError::Url {
            url: url.to_owned(),
            message,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected s3://bucket/prefix or file:///path".into()))?;
        let (store, prefix): (Arc<dyn ObjectStore>, &str) = match scheme {
            "file" => {
                if !rest.starts_with('/') {
                    return Err(bad("a file:// URL needs an absolute path".into()));
                }
                std::fs::create_dir_all(rest).map_err(|e| bad(e.to_string()))?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(rest)
                    .map_err(|e| bad(e.to_string()))?;
                (Arc::new(fs), "")
            }
            "s3" | "s3a" => {
                // The S3 client verifies https with the system's roots over
                // rustls, whose crypto (ring, as everywhere in sqld) must be
                // the process default; sqld's own TLS names its provider.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(bad("no bucket name".into()));
                }
                let retry = object_store::RetryConfig {
                    max_retries: CLIENT_RETRIES,
                    retry_timeout: CLIENT_RETRY_TIMEOUT,
                    ..Default::default()
                };
                // Set as keys, not as ClientOptions, which would reset what
                // the environment set (AWS_ALLOW_HTTP among it).
                use object_store::aws::AmazonS3ConfigKey::Client;
                use object_store::ClientConfigKey::{ConnectTimeout, Timeout};
                let seconds = |d: Duration| format!("{}s", d.as_secs());
                let s3 = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry)
                    .with_config(Client(Timeout), seconds(REQUEST_TIMEOUT))
                    .with_config(Client(ConnectTimeout), seconds(CONNECT_TIMEOUT))
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
                (Arc::new(s3), prefix)
            }
            other => {
                return Err(bad(format!(
                    "unsupported scheme {other}:// (use s3:// or file://)"
                )))
            }
        };
        Ok(BackupStore {
            store,
            prefix: StorePath::from(prefix.trim_matches('/')),
            url: url.to_owned(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, key: &str) -> StorePath {
        key.split('/')
            .fold(self.prefix.clone(), |p, part| p.clone().join(part))
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), object_store::Error> {
        self.store
            .put(&self.path(key), PutPayload::from(bytes))
            .await
            .map(|_| ())
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, object_store::Error> {
        self.store.get(&self.path(key)).await?.bytes().await
    }

    pub async fn delete(&self, key: &str) -> Result<(), object_store::Error> {
        self.store.delete(&self.path(key)).await
    }

    /// Every object sqld wrote under the prefix (others are ignored).
    pub async fn list(&self) -> Result<Vec<ObjectName>, object_store::Error> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let metas: Vec<_> = self.store.list(prefix).try_collect().await?;
        Ok(metas
            .iter()
            .filter_map(|m| {
                let key = match prefix {
                    Some(p) => m
                        .location
                        .prefix_match(p)?
                        .map(|part| part.as_ref().to_owned()),
                    None => return ObjectName::parse(m.location.as_ref()),
                };
                ObjectName::parse(&key.collect::<Vec<_>>().join("/"))
            })
            .collect())
    }
}
