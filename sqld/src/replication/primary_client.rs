//! The HTTP client a replica reaches its primary with, for frames,
//! snapshots and forwarded writes alike: one connection pool, and for an
//! `https://` primary URL a certificate checked against `--primary-ca-file`
//! (and nothing else: no system roots, so only the cluster's own CA can
//! vouch for a primary).

use std::path::Path;
use std::time::Duration;

use crate::tls::{self, TlsError};

/// A primary that does not accept a connection within this is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// TCP keepalive on connections to the primary: a request whose primary
/// vanished (a partition, a host gone, no RST) fails after about 30 s
/// rather than waiting for the kernel's two hours.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_PROBES: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum PrimaryClientError {
    #[error("the primary URL {0} is https: pass --primary-ca-file with the CA certificate that signed its certificate")]
    NoCa(String),
    #[error("the primary URL {0} must start with http:// or https://")]
    Scheme(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot build the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
}

pub fn build(
    primary_url: &str,
    ca_file: Option<&Path>,
) -> Result<reqwest::Client, PrimaryClientError> {
    let https = primary_url.starts_with("https://");
    if !https && !primary_url.starts_with("http://") {
        return Err(PrimaryClientError::Scheme(primary_url.to_owned()));
    }
    if https && ca_file.is_none() {
        return Err(PrimaryClientError::NoCa(primary_url.to_owned()));
    }
    Ok(reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_keepalive(KEEPALIVE_IDLE)
        .tcp_keepalive_interval(KEEPALIVE_INTERVAL)
        .tcp_keepalive_retries(KEEPALIVE_PROBES)
        .tls_backend_preconfigured(tls::client_config(ca_file)?)
        .build()?)
}
