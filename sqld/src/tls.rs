//! TLS from PEM files: the pg listener's acceptor, the internal API
//! listener's, and the client a replica verifies its primary with.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use pgwire::tokio::TlsAcceptor;
use tokio_rustls::rustls;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("no private key found in {0}")]
    NoKey(String),
    #[error("no certificate found in {0}")]
    NoCertificate(String),
    #[error("invalid TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("{0} is not a usable CA certificate: {1}")]
    Ca(String, rustls::Error),
}

/// What ALPN protocol each listener's clients negotiate.
const PG_ALPN: &[u8] = b"postgresql";
const HTTP_ALPN: &[u8] = b"http/1.1";

fn open(p: &Path) -> Result<BufReader<File>, TlsError> {
    File::open(p)
        .map(BufReader::new)
        .map_err(|e| TlsError::Read(p.display().to_string(), e))
}

fn certificates(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut open(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Read(path.display().to_string(), e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.display().to_string()));
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(cert: &Path, key: &Path, alpn: &[u8]) -> Result<rustls::ServerConfig, TlsError> {
    let certs = certificates(cert)?;
    let key_der = rustls_pemfile::private_key(&mut open(key)?)
        .map_err(|e| TlsError::Read(key.display().to_string(), e))?
        .ok_or_else(|| TlsError::NoKey(key.display().to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

/// The pg listener's: direct TLS connections (Postgres 17 clients)
/// negotiate the `postgresql` ALPN.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    Ok(TlsAcceptor::from(Arc::new(server_config(
        cert, key, PG_ALPN,
    )?)))
}

/// The internal API listener's (HTTP/1.1).
pub fn http_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server_config(
        cert, key, HTTP_ALPN,
    )?)))
}

/// A client that trusts only the CA certificates in `ca_file`: what a
/// replica checks its primary's certificate against. Without a file it
/// trusts nothing, so it can reach plain `http://` primaries only.
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(file) = ca_file {
        for cert in certificates(file)? {
            roots
                .add(cert)
                .map_err(|e| TlsError::Ca(file.display().to_string(), e))?;
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![HTTP_ALPN.to_vec()];
    Ok(config)
}
