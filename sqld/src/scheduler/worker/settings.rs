//! Per-session settings: what SET, SHOW and RESET read and write, with the
//! values Postgres drivers expect to find at startup. `statement_timeout`
//! is the one that acts: it bounds the session's statements. The same
//! values answer the SQL functions `current_setting` and `set_config`,
//! which are registered on the session's connections.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use libsql_sys::rusqlite::functions::FunctionFlags;
use libsql_sys::rusqlite::Connection;

use crate::database::{catalog_server_version, SERVER_VERSION_NUM};
use libsql_sys::rusqlite::types::Value;
use pgwire::api::Type;

use super::no_rows;
use crate::error::{sqlstate, SqlError};
use crate::query::{Column, StatementResult};
use crate::sql::SessionCommand;

/// Per-session settings for SET and SHOW.
pub(super) struct Settings {
    /// Shared with the connection's `current_setting` and `set_config`.
    values: Arc<Mutex<HashMap<String, String>>>,
    /// The server's `--statement-timeout`: what RESET and DEFAULT restore.
    server_statement_timeout: Option<Duration>,
    statement_timeout: Option<Duration>,
}

const STATEMENT_TIMEOUT: &str = "statement_timeout";
/// PostgreSQL's name; `sqld.synchronous_commit` is an alias.
const SYNCHRONOUS_COMMIT: &str = "synchronous_commit";

impl Settings {
    pub(super) fn new(statement_timeout: Option<Duration>) -> Self {
        Settings {
            values: Arc::new(Mutex::new(defaults(statement_timeout))),
            server_statement_timeout: statement_timeout,
            statement_timeout,
        }
    }

    fn values(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // A poisoned map is still a map of strings.
        self.values.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `current_setting(name [, missing_ok])` and
    /// `set_config(name, value, is_local)` on `conn`, reading and writing
    /// this session's values (`set_config` is session-wide even when
    /// `is_local` asks for the transaction only).
    pub(super) fn install_functions(&self, conn: &Connection) -> libsql_sys::rusqlite::Result<()> {
        let flags = || FunctionFlags::SQLITE_UTF8;
        for args in [1, 2] {
            let values = self.values.clone();
            conn.create_scalar_function("current_setting", args, flags(), move |ctx| {
                let name: String = ctx.get(0)?;
                let missing_ok = args == 2 && ctx.get::<bool>(1)?;
                let values = values.lock().unwrap_or_else(PoisonError::into_inner);
                match values.get(&name.to_ascii_lowercase()) {
                    Some(v) => Ok(Some(v.clone())),
                    None if missing_ok => Ok(None),
                    None => Err(libsql_sys::rusqlite::Error::UserFunctionError(
                        format!("unrecognized configuration parameter \"{name}\"").into(),
                    )),
                }
            })?;
        }
        // The user is the session's `session_authorization`.
        for name in ["current_user", "session_user", "current_role", "user"] {
            let values = self.values.clone();
            conn.create_scalar_function(name, 0, flags(), move |_| {
                let values = values.lock().unwrap_or_else(PoisonError::into_inner);
                Ok(values.get("session_authorization").cloned())
            })?;
        }
        // The schemas of the session's search_path (all of them exist:
        // sqld has `public` and the two catalogs).
        let values = self.values.clone();
        conn.create_scalar_function("current_schemas", 1, flags(), move |ctx| {
            let include_implicit: bool = ctx.get(0)?;
            let values = values.lock().unwrap_or_else(PoisonError::into_inner);
            let path = values.get("search_path").map_or("", String::as_str);
            let mut schemas: Vec<&str> = path
                .split(',')
                .map(|s| s.trim().trim_matches('"'))
                .filter(|s| !s.is_empty() && *s != "$user")
                .collect();
            if include_implicit && !schemas.contains(&"pg_catalog") {
                schemas.insert(0, "pg_catalog");
            }
            Ok(format!("{{{}}}", schemas.join(",")))
        })?;
        let values = self.values.clone();
        conn.create_scalar_function("set_config", 3, flags(), move |ctx| {
            let name: String = ctx.get(0)?;
            let value: Option<String> = ctx.get(1)?;
            let value = value.unwrap_or_default();
            values
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(name.to_ascii_lowercase(), value.clone());
            Ok(value)
        })
    }
}

/// The values a session starts with.
fn defaults(statement_timeout: Option<Duration>) -> HashMap<String, String> {
    let defaults = [
        ("server_version", catalog_server_version()),
        ("server_encoding", "UTF8".into()),
        ("client_encoding", "UTF8".into()),
        ("datestyle", "ISO, MDY".into()),
        ("timezone", "UTC".into()),
        ("integer_datetimes", "on".into()),
        ("standard_conforming_strings", "on".into()),
        ("transaction_isolation", "serializable".into()),
        ("default_transaction_isolation", "serializable".into()),
        ("transaction_read_only", "off".into()),
        ("search_path", "public".into()),
        ("application_name", String::new()),
        ("extra_float_digits", "1".into()),
        ("max_identifier_length", "63".into()),
        ("max_index_keys", "32".into()),
        ("is_superuser", "on".into()),
        ("intervalstyle", "postgres".into()),
        ("lc_messages", "C".into()),
        ("server_version_num", SERVER_VERSION_NUM.to_string()),
        ("client_min_messages", "notice".into()),
        ("default_transaction_read_only", "off".into()),
        ("lock_timeout", "0".into()),
        ("session_authorization", "sqld".into()),
        (SYNCHRONOUS_COMMIT, "on".into()),
        (STATEMENT_TIMEOUT, format_millis(statement_timeout)),
    ];
    defaults
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

impl Settings {
    pub(super) fn statement_timeout(&self) -> Option<Duration> {
        self.statement_timeout
    }

    /// Whether this session's commits wait for synchronous replicas: not
    /// when set to `off` or `local`, as in PostgreSQL.
    pub(super) fn synchronous_commit(&self) -> bool {
        !matches!(
            self.values().get(SYNCHRONOUS_COMMIT).map(String::as_str),
            Some("off" | "local" | "false" | "0")
        )
    }

    pub(super) fn apply(&mut self, cmd: SessionCommand) -> Result<StatementResult, SqlError> {
        match cmd {
            SessionCommand::Set { name, value } => {
                let mut name = name.to_ascii_lowercase();
                if name == "sqld.synchronous_commit" {
                    name = SYNCHRONOUS_COMMIT.to_owned();
                }
                let value = match name.as_str() {
                    SYNCHRONOUS_COMMIT => value.to_ascii_lowercase(),
                    _ => value,
                };
                if value.eq_ignore_ascii_case("default") {
                    self.reset(&name);
                } else if name == STATEMENT_TIMEOUT {
                    let timeout = parse_millis(&value).ok_or_else(|| {
                        SqlError::new(
                            sqlstate::INVALID_PARAMETER_VALUE,
                            format!(
                                "invalid value for parameter \"{STATEMENT_TIMEOUT}\": \"{value}\""
                            ),
                        )
                    })?;
                    // 0 turns the timeout off, as in Postgres.
                    self.statement_timeout = (!timeout.is_zero()).then_some(timeout);
                    let shown = format_millis(self.statement_timeout);
                    self.values().insert(name, shown);
                } else {
                    self.values().insert(name, value);
                }
                Ok(no_rows("SET"))
            }
            SessionCommand::Reset(name) => {
                let name = name.to_ascii_lowercase();
                if name == "all" {
                    *self.values() = defaults(self.server_statement_timeout);
                    self.statement_timeout = self.server_statement_timeout;
                } else {
                    self.reset(&name);
                }
                Ok(no_rows("RESET"))
            }
            SessionCommand::Show(name) if name == "all" => Ok(self.show_all()),
            SessionCommand::Show(name) => {
                let key = name.to_ascii_lowercase();
                let value = self.values().get(&key).cloned().ok_or_else(|| {
                    SqlError::new(
                        "42704",
                        format!("unrecognized configuration parameter \"{name}\""),
                    )
                })?;
                Ok(StatementResult {
                    tag: "SHOW".into(),
                    columns: Some(vec![Column {
                        name: key,
                        ty: Type::TEXT,
                    }]),
                    rows: vec![vec![Value::Text(value)]],
                    held: Default::default(),
                })
            }
            SessionCommand::NoOp(tag) => Ok(no_rows(tag)),
        }
    }
}

impl Settings {
    /// Back to the value the session started with.
    fn reset(&mut self, name: &str) {
        let mut defaults = defaults(self.server_statement_timeout);
        if name == STATEMENT_TIMEOUT {
            self.statement_timeout = self.server_statement_timeout;
        }
        let mut values = self.values();
        match defaults.remove(name) {
            Some(v) => values.insert(name.to_owned(), v),
            None => values.remove(name),
        };
    }

    /// `SHOW ALL`: every setting, sorted, with Postgres' three columns.
    fn show_all(&self) -> StatementResult {
        let mut pairs: Vec<(String, String)> = self
            .values()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pairs.sort();
        let rows = pairs
            .into_iter()
            .map(|(k, v)| vec![Value::Text(k), Value::Text(v), Value::Null])
            .collect();
        StatementResult {
            tag: "SHOW".into(),
            columns: Some(
                SHOW_ALL_COLUMNS
                    .iter()
                    .map(|name| Column {
                        name: (*name).to_owned(),
                        ty: Type::TEXT,
                    })
                    .collect(),
            ),
            rows,
            held: Default::default(),
        }
    }
}

/// The columns of `SHOW ALL`, as Postgres names them.
pub(super) const SHOW_ALL_COLUMNS: &[&str] = &["name", "setting", "description"];

/// A Postgres time setting in milliseconds: an integer (milliseconds) or a
/// number with a unit (`us`, `ms`, `s`, `min`, `h`, `d`), as in
/// `'100ms'`, `'2s'`, `'1.5min'`.
fn parse_millis(value: &str) -> Option<Duration> {
    let value = value.trim();
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    let millis_per_unit = match unit.trim() {
        "" | "ms" => 1.0,
        "us" => 0.001,
        "s" => 1_000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    let millis = (number * millis_per_unit).round();
    // Postgres' bound for the setting (INT_MAX milliseconds).
    (millis <= i32::MAX as f64).then(|| Duration::from_millis(millis as u64))
}

/// SHOW's spelling: the largest unit that divides the value, as Postgres
/// prints it (`0` when off).
fn format_millis(timeout: Option<Duration>) -> String {
    let Some(millis) = timeout.map(|t| t.as_millis()) else {
        return "0".to_owned();
    };
    let units = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1_000),
    ];
    for (unit, size) in units {
        if millis >= size && millis % size == 0 {
            return format!("{}{unit}", millis / size);
        }
    }
    format!("{millis}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_settings_read_and_print_as_postgres_does() {
        let ms = |v| parse_millis(v).map(|d| d.as_millis());
        assert_eq!(ms("100"), Some(100));
        assert_eq!(ms("100ms"), Some(100));
        assert_eq!(ms("2s"), Some(2_000));
        assert_eq!(ms("2 s"), Some(2_000));
        assert_eq!(ms("1.5min"), Some(90_000));
        assert_eq!(ms("1h"), Some(3_600_000));
        assert_eq!(ms("0"), Some(0));
        assert_eq!(ms("soon"), None);
        assert_eq!(ms("5 fortnights"), None);
        assert_eq!(ms("-1"), None);
        let show = |m| format_millis(Some(Duration::from_millis(m)));
        assert_eq!(show(100), "100ms");
        assert_eq!(show(2_000), "2s");
        assert_eq!(show(60_000), "1min");
        assert_eq!(show(1_500), "1500ms");
        assert_eq!(format_millis(None), "0");
    }

    #[test]
    fn statement_timeout_is_set_and_reset_to_the_servers() {
        let server = Some(Duration::from_secs(30));
        let mut s = Settings::new(server);
        let set = |s: &mut Settings, v: &str| {
            s.apply(SessionCommand::Set {
                name: "statement_timeout".into(),
                value: v.into(),
            })
        };
        set(&mut s, "100").unwrap();
        assert_eq!(s.statement_timeout(), Some(Duration::from_millis(100)));
        set(&mut s, "0").unwrap();
        assert_eq!(s.statement_timeout(), None);
        set(&mut s, "DEFAULT").unwrap();
        assert_eq!(s.statement_timeout(), server);
        set(&mut s, "1min").unwrap();
        s.apply(SessionCommand::Reset("statement_timeout".into()))
            .unwrap();
        assert_eq!(s.statement_timeout(), server);
        assert!(set(&mut s, "fast").is_err());
        assert_eq!(s.statement_timeout(), server);
    }
}
