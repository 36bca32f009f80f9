//! The backup store: an `object_store` bucket (or directory) and a prefix,
//! opened from `--backup-url`. `s3://bucket/prefix` is any S3-compatible
//! store, configured from the usual AWS variables (`AWS_ENDPOINT_URL`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ALLOW_HTTP`); `gs://bucket/prefix` is Google Cloud Storage
//! (`GOOGLE_SERVICE_ACCOUNT`, `GOOGLE_SERVICE_ACCOUNT_KEY`, or the
//! application default credentials); `az://container/prefix` is Azure Blob
//! Storage (`AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY` or
//! the other `AZURE_*` variables object_store reads); `file:///path` is a
//! local directory.

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

/// `bucket/prefix` of a cloud URL. The clients verify https with the
/// system's roots over rustls, whose crypto (ring, as everywhere in sqld)
/// must be the process default; sqld's own TLS names its provider.
fn bucket_and_prefix(rest: &str) -> Result<(&str, &str), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err("no bucket name".into());
    }
    Ok((bucket, prefix))
}

fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: CLIENT_RETRIES,
        retry_timeout: CLIENT_RETRY_TIMEOUT,
        ..Default::default()
    }
}

// Timeouts are set as configuration keys, not as ClientOptions, which
// would reset what the environment set (AWS_ALLOW_HTTP among it).
use object_store::ClientConfigKey::{ConnectTimeout, Timeout};

fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

impl BackupStore {
    pub fn open(url: &str) -> Result<Self, BackupError> {
        let bad = |message: String| BackupError::Url {
            url: url.to_owned(),
            message,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or file:///path".into()))?;
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
                let (bucket, prefix) = bucket_and_prefix(rest).map_err(bad)?;
                use object_store::aws::AmazonS3ConfigKey::Client;
                let s3 = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry())
                    .with_config(Client(Timeout), seconds(REQUEST_TIMEOUT))
                    .with_config(Client(ConnectTimeout), seconds(CONNECT_TIMEOUT))
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
                (Arc::new(s3), prefix)
            }
            "gs" => {
                let (bucket, prefix) = bucket_and_prefix(rest).map_err(bad)?;
                use object_store::gcp::GoogleConfigKey::Client;
                let gcs = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry())
                    .with_config(Client(Timeout), seconds(REQUEST_TIMEOUT))
                    .with_config(Client(ConnectTimeout), seconds(CONNECT_TIMEOUT))
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
                (Arc::new(gcs), prefix)
            }
            "az" | "azure" => {
                let (container, prefix) = bucket_and_prefix(rest).map_err(bad)?;
                use object_store::azure::AzureConfigKey::Client;
                let azure = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(container)
                    .with_retry(retry())
                    .with_config(Client(Timeout), seconds(REQUEST_TIMEOUT))
                    .with_config(Client(ConnectTimeout), seconds(CONNECT_TIMEOUT))
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
                (Arc::new(azure), prefix)
            }
            other => {
                return Err(bad(format!(
                    "unsupported scheme {other}:// (use s3://, gs://, az:// or file://)"
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

    /// The object's bytes as they arrive.
    pub async fn get_stream(
        &self,
        key: &str,
    ) -> Result<
        futures::stream::BoxStream<'static, Result<Bytes, object_store::Error>>,
        object_store::Error,
    > {
        Ok(self.store.get(&self.path(key)).await?.into_stream())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_urls_open_into_stores_without_the_network() {
        // No credentials are needed to build the client; they are looked
        // up on the first request.
        let gcs = BackupStore::open("gs://some-bucket/prod/db1").unwrap();
        assert_eq!(gcs.prefix.as_ref(), "prod/db1");
        assert!(matches!(
            BackupStore::open("gs:///prefix"),
            Err(BackupError::Url { .. })
        ));
        // Azure names the account in the environment (tests/backup.rs
        // opens a store with one): without it the Azure client says so,
        // which only an az:// URL reaches.
        if std::env::var_os("AZURE_STORAGE_ACCOUNT_NAME").is_none() {
            let err = BackupStore::open("az://container/prefix").unwrap_err();
            assert!(err.to_string().contains("ccount"), "{err}");
        }
        let err = BackupStore::open("ftp://host/x").unwrap_err();
        assert!(err.to_string().contains("unsupported scheme"), "{err}");
    }
}
