//! The shared secret of the internal API (replication and forwarded
//! writes): where it comes from, and how a request proves it knows it.
//!
//! Everything on the HTTP listener under `/v1/replication/` reads or writes
//! the database, so it is never open by accident. The token is, in order:
//! `--replication-token`, the file named by `--replication-token-file`, or,
//! on a primary whose internal API listens on loopback only, one generated at first
//! start and kept in `<db-path>/replication-token` (mode 0600) for local
//! replicas to read. A primary listening beyond loopback with none of these
//! refuses to start. Only `--dev` runs the API open, and only without a
//! token.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;

/// Where a primary keeps the token it generated.
pub const GENERATED_TOKEN_FILE: &str = "replication-token";
/// Random bytes in a generated token (hex-encoded: 64 characters).
const GENERATED_TOKEN_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the replication token file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("the replication token file {0} is empty")]
    Empty(PathBuf),
    #[error("cannot keep a generated replication token in {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("cannot generate a replication token: {0}")]
    Random(getrandom::Error),
    #[error(
        "refusing to serve the internal replication API on {0} without a token: it reads and \
         writes the whole database. Set --replication-token or --replication-token-file \
         (or listen on loopback, or use --dev)"
    )]
    OpenBeyondLoopback(SocketAddr),
    #[error(
        "a replica needs the primary's replication token: set --replication-token or \
         --replication-token-file (a primary on this machine keeps a generated one in \
         <its db-path>/{GENERATED_TOKEN_FILE}), or use --dev against a --dev primary"
    )]
    ReplicaWithout,
}

/// The token a server requires (primary) or sends (replica).
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    pub fn new(secret: impl Into<String>) -> Self {
        Token(secret.into())
    }

    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Whether an `Authorization` header value carries this token, compared
    /// in constant time so the answer's timing tells nothing about it.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let Some(given) = authorization.and_then(bearer_credentials) else {
            return false;
        };
        bool::from(given.ct_eq(self.0.as_bytes()))
    }
}

/// The credentials of a `Bearer` header value. RFC 7235: the scheme is
/// case-insensitive and one or more spaces separate it from them.
fn bearer_credentials(value: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer";
    let (scheme, rest) = value.split_at_checked(SCHEME.len())?;
    if !scheme.eq_ignore_ascii_case(SCHEME) || !rest.starts_with(b" ") {
        return None;
    }
    Some(rest.trim_ascii_start())
}

/// What the command line says about the token.
pub struct TokenSource<'a> {
    pub token: Option<&'a str>,
    pub file: Option<&'a Path>,
    pub dev: bool,
    pub is_replica: bool,
    pub db_path: &'a Path,
    /// Where the internal API listens.
    pub api_listen_addr: SocketAddr,
}

/// Decides the token in force; `None` only in development mode.
pub fn resolve(source: &TokenSource<'_>) -> Result<Option<Token>, TokenError> {
    if let Some(token) = source.token.filter(|t| !t.is_empty()) {
        return Ok(Some(Token::new(token)));
    }
    if let Some(file) = source.file {
        return read_file(file).map(Some);
    }
    if source.dev {
        return Ok(None);
    }
    if source.is_replica {
        return Err(TokenError::ReplicaWithout);
    }
    if !source.api_listen_addr.ip().is_loopback() {
        return Err(TokenError::OpenBeyondLoopback(source.api_listen_addr));
    }
    let path = source.db_path.join(GENERATED_TOKEN_FILE);
    if path.exists() {
        return read_file(&path).map(Some);
    }
    let token = generate()?;
    write_private(&path, token.secret()).map_err(|e| TokenError::Write(path.clone(), e))?;
    tracing::info!(file = %path.display(), "generated a replication token; replicas need it");
    Ok(Some(token))
}

fn read_file(path: &Path) -> Result<Token, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|e| TokenError::Read(path.to_owned(), e))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(TokenError::Empty(path.to_owned()));
    }
    Ok(Token::new(secret))
}

fn generate() -> Result<Token, TokenError> {
    let mut bytes = [0u8; GENERATED_TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(TokenError::Random)?;
    Ok(Token::new(
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    ))
}

/// Creates `path` readable by its owner only (never rewriting one that a
/// concurrent start made), with the token and a newline.
fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "{secret}")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source<'a>(dir: &'a Path, addr: &str) -> TokenSource<'a> {
        TokenSource {
            token: None,
            file: None,
            dev: false,
            is_replica: false,
            db_path: dir,
            api_listen_addr: addr.parse().unwrap(),
        }
    }

    #[test]
    fn admits_only_the_exact_bearer_token() {
        let t = Token::new("s3cret");
        // The scheme in any case (RFC 7235), then one or more spaces.
        for right in [
            &b"Bearer s3cret"[..],
            b"bearer s3cret",
            b"BEARER s3cret",
            b"bEaReR  s3cret",
        ] {
            assert!(t.admits(Some(right)), "{right:?}");
        }
        for wrong in [
            &b"Bearer s3cre"[..],
            b"Bearer s3cret2",
            b"Bearer S3CRET",
            b"Bearers3cret",
            b"Basic s3cret",
            b"s3cret",
            b"Bearer ",
            b"Bearer",
            b"",
        ] {
            assert!(!t.admits(Some(wrong)), "{wrong:?}");
        }
        assert!(!t.admits(None));
    }

    #[test]
    fn a_primary_on_loopback_generates_one_token_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = resolve(&source(dir.path(), "127.0.0.1:8080"))
            .unwrap()
            .unwrap();
        assert_eq!(first.secret().len(), 2 * GENERATED_TOKEN_BYTES);
        let again = resolve(&source(dir.path(), "127.0.0.1:8080"))
            .unwrap()
            .unwrap();
        assert_eq!(first.secret(), again.secret(), "kept across restarts");
        let mode = std::fs::metadata(dir.path().join(GENERATED_TOKEN_FILE))
            .unwrap()
            .permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600);
    }

    #[test]
    fn beyond_loopback_a_token_is_required_and_dev_stays_open() {
        let dir = tempfile::tempdir().unwrap();
        let wide = source(dir.path(), "0.0.0.0:8080");
        assert!(matches!(
            resolve(&wide),
            Err(TokenError::OpenBeyondLoopback(_))
        ));
        let dev = TokenSource { dev: true, ..wide };
        assert!(resolve(&dev).unwrap().is_none());
        let replica = TokenSource {
            is_replica: true,
            ..source(dir.path(), "127.0.0.1:8080")
        };
        assert!(matches!(resolve(&replica), Err(TokenError::ReplicaWithout)));
    }
}
