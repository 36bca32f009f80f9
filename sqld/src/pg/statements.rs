//! A connection's named prepared statements, as the server keeps them for
//! the extended protocol: bounded in number and in bytes of SQL, so one
//! client cannot grow the server's memory by preparing without end, and
//! forgotten on Close, `DEALLOCATE` and `DISCARD ALL` (drivers such as
//! psycopg free statements with `DEALLOCATE`, not with Close).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore};

use crate::error::SqlError;
use crate::sql::Released;

/// Named statements one connection may keep (Postgres has no limit; its
/// memory is per backend process, ours is shared).
pub const MAX_STATEMENTS: usize = 10_000;
/// Bytes of SQL text they may hold together.
pub const MAX_STATEMENT_BYTES: usize = 64 * 1024 * 1024;
/// SQLSTATE configuration_limit_exceeded.
const CONFIGURATION_LIMIT_EXCEEDED: &str = "53400";

/// The names a connection has prepared and the size of each one's SQL.
#[derive(Default)]
pub struct PreparedNames {
    inner: Mutex<Names>,
}

#[derive(Default)]
struct Names {
    sizes: HashMap<String, usize>,
    bytes: usize,
}

impl PreparedNames {
    /// The connection's registry, made on first use.
    pub fn of<C: ClientInfo + ?Sized>(client: &C) -> Arc<PreparedNames> {
        if let Some(names) = client.session_extensions().get::<PreparedNames>() {
            return names;
        }
        client.session_extensions().insert(PreparedNames::default());
        client
            .session_extensions()
            .get::<PreparedNames>()
            .expect("just inserted")
    }

    /// Records `name` (re)prepared with `sql_len` bytes of SQL, unless that
    /// would pass a bound. The unnamed statement is replaced by every Parse
    /// and is not counted.
    pub fn admit(&self, name: &str, sql_len: usize) -> Result<(), SqlError> {
        if name.is_empty() {
            return Ok(());
        }
        let mut names = self.lock();
        let replaced = names.sizes.get(name).copied();
        let count = names.sizes.len() + usize::from(replaced.is_none());
        let replaced = replaced.unwrap_or(0);
        let bytes = names.bytes - replaced + sql_len;
        if count > MAX_STATEMENTS || bytes > MAX_STATEMENT_BYTES {
            return Err(SqlError::new(
                CONFIGURATION_LIMIT_EXCEEDED,
                format!(
                    "too many prepared statements on this connection (at most {MAX_STATEMENTS}, \
                     {} MiB of SQL): close or DEALLOCATE some",
                    MAX_STATEMENT_BYTES / (1024 * 1024)
                ),
            ));
        }
        names.sizes.insert(name.to_owned(), sql_len);
        names.bytes = bytes;
        Ok(())
    }

    pub fn forget(&self, name: &str) {
        let mut names = self.lock();
        if let Some(size) = names.sizes.remove(name) {
            names.bytes -= size;
        }
    }

    /// Drops what `released` names from the client's statement store.
    pub fn release<C>(&self, client: &C, released: &Released)
    where
        C: ClientPortalStore,
        C::PortalStore: PortalStore,
    {
        match released {
            Released::One(name) => {
                client.portal_store().rm_statement(name);
                self.forget(name);
            }
            Released::All => {
                let mut names = self.lock();
                for name in names.sizes.keys() {
                    client.portal_store().rm_statement(name);
                }
                *names = Names::default();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Names> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_and_reusable() {
        let names = PreparedNames::default();
        for i in 0..MAX_STATEMENTS {
            names.admit(&format!("s{i}"), 10).unwrap();
        }
        assert!(names.admit("one more", 10).is_err());
        names.admit("s0", 20).unwrap(); // re-preparing a name is no new one
        names.admit("", 10).unwrap(); // nor is the unnamed statement
        names.forget("s1");
        names.admit("one more", 10).unwrap();
        assert!(names.admit("huge", MAX_STATEMENT_BYTES).is_err());
    }
}
