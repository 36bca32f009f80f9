//! Per-session settings: what SET, SHOW and RESET read and write, with the
//! values Postgres drivers expect to find at startup.

use std::collections::HashMap;

use crate::database::catalog_server_version;
use libsql_sys::rusqlite::types::Value;
use pgwire::api::Type;

use super::no_rows;
use crate::error::SqlError;
use crate::query::{Column, StatementResult};
use crate::sql::SessionCommand;

/// Per-session settings for SET and SHOW.
pub(super) struct Settings {
    pub(super) values: HashMap<String, String>,
}

impl Default for Settings {
    fn default() -> Self {
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
            ("is_superuser", "on".into()),
            ("intervalstyle", "postgres".into()),
            ("lc_messages", "C".into()),
            ("statement_timeout", "0".into()),
        ];
        Settings {
            values: defaults
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        }
    }
}

impl Settings {
    pub(super) fn apply(&mut self, cmd: SessionCommand) -> Result<StatementResult, SqlError> {
        match cmd {
            SessionCommand::Set { name, value } => {
                self.values.insert(name.to_ascii_lowercase(), value);
                Ok(no_rows("SET"))
            }
            SessionCommand::Reset(name) => {
                let name = name.to_ascii_lowercase();
                if name == "all" {
                    *self = Settings::default();
                } else if let Some(v) = Settings::default().values.remove(&name) {
                    self.values.insert(name, v);
                } else {
                    self.values.remove(&name);
                }
                Ok(no_rows("RESET"))
            }
            SessionCommand::Show(name) => {
                let key = name.to_ascii_lowercase();
                let value = self.values.get(&key).cloned().ok_or_else(|| {
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
