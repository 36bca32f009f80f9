//! Where the database is: a server URL given as the filename, or `SQLD_URL`
//! (which wins over any filename, so an unmodified program opening `app.db`
//! talks to the server). There is no local engine in this library.

use std::fmt;

/// The environment variable that sends every open to one server.
pub const SQLD_URL: &str = "SQLD_URL";

const SCHEMES: &[&str] = &["postgres://", "postgresql://", "sqld://"];
const DEFAULT_PORT: u16 = 5432;

/// A parsed server address and login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    pub tls: TlsMode,
}

/// `sslmode`: `disable` (default) and `prefer`/`allow` speak plaintext;
/// `require` encrypts without checking the certificate (libpq's meaning);
/// `verify-ca`/`verify-full` are refused rather than silently weakened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Require,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError(pub String);

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Decides where `filename` goes: `SQLD_URL` when set, else the filename
/// when it is a server URL, else an error for `SQLITE_CANTOPEN`.
pub fn resolve(filename: &str) -> Result<Target, TargetError> {
    match std::env::var(SQLD_URL) {
        Ok(url) if !url.is_empty() => parse(&url)
            .map_err(|e| TargetError(format!("{SQLD_URL} is not a usable server URL: {e}"))),
        _ if SCHEMES.iter().any(|s| filename.starts_with(s)) => parse(filename),
        _ => Err(TargetError(format!(
            "cannot open \"{filename}\": this libsqlite3 is the sqld network client and has no \
             local database engine; open a postgres://, postgresql:// or sqld://host:port/db URL, \
             or set {SQLD_URL}"
        ))),
    }
}

/// Parses `scheme://[user[:password]@]host[:port][/db][?key=value&...]`.
pub fn parse(url: &str) -> Result<Target, TargetError> {
    let rest = SCHEMES
        .iter()
        .find_map(|s| url.strip_prefix(s))
        .ok_or_else(|| {
            TargetError(format!(
                "\"{url}\" does not start with postgres://, postgresql:// or sqld://"
            ))
        })?;
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let mut target = Target {
        host: "localhost".to_owned(),
        port: DEFAULT_PORT,
        user: std::env::var("USER").unwrap_or_else(|_| "sqld".to_owned()),
        password: None,
        dbname: String::new(),
        tls: TlsMode::Disable,
    };
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (userinfo, None),
        };
        target.user = decode(user)?;
        target.password = password.map(decode).transpose()?;
    }
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (h, p) = bracketed
            .split_once(']')
            .ok_or_else(|| TargetError("unclosed [ in host".to_owned()))?;
        (h, p.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if !host.is_empty() {
        target.host = decode(host)?;
    }
    if let Some(port) = port.filter(|p| !p.is_empty()) {
        target.port = port
            .parse()
            .map_err(|_| TargetError(format!("invalid port \"{port}\"")))?;
    }
    target.dbname = decode(path)?;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value)?;
        match key {
            "user" => target.user = value,
            "password" => target.password = Some(value),
            "host" => target.host = value,
            "port" => {
                target.port = value
                    .parse()
                    .map_err(|_| TargetError(format!("invalid port \"{value}\"")))?
            }
            "dbname" => target.dbname = value,
            "sslmode" => {
                target.tls = match value.as_str() {
                    "disable" | "allow" | "prefer" => TlsMode::Disable,
                    "require" => TlsMode::Require,
                    other => {
                        return Err(TargetError(format!(
                            "sslmode={other} is not supported (use disable or require)"
                        )))
                    }
                }
            }
            // libpq options with no meaning here are accepted and ignored.
            _ => {}
        }
    }
    if target.dbname.is_empty() {
        target.dbname = target.user.clone();
    }
    Ok(target)
}

/// Percent-decoding for URL parts.
fn decode(s: &str) -> Result<String, TargetError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| TargetError(format!("bad percent-escape in \"{s}\"")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| TargetError(format!("\"{s}\" is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t = parse("postgres://alice:p%40ss@db.example:6000/app?sslmode=require").unwrap();
        assert_eq!(t.host, "db.example");
        assert_eq!(t.port, 6000);
        assert_eq!(t.user, "alice");
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        assert_eq!(t.dbname, "app");
        assert_eq!(t.tls, TlsMode::Require);
        let t = parse("sqld://127.0.0.1:7000/db?user=bob&password=x").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 7000));
        assert_eq!((t.user.as_str(), t.password.as_deref()), ("bob", Some("x")));
        assert!(parse("postgresql://h/db?sslmode=verify-full").is_err());
        assert!(parse("app.db").is_err());
    }
}
