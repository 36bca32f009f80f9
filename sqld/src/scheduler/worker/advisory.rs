//! Session-level advisory locks (`pg_advisory_lock`, `pg_try_advisory_lock`,
//! `pg_advisory_unlock`, `pg_advisory_unlock_all`), as Postgres keeps them:
//! a lock is held by one session, re-entrantly, until it unlocks it as
//! often as it locked it, or ends. The table is this process's, so on a
//! replica the locks are the replica's own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use libsql_sys::rusqlite::functions::{Context, FunctionFlags};
use libsql_sys::rusqlite::{Connection, Error, Result};

use crate::scheduler::StatementGuard;

/// Held keys: the session holding each and how many times it locked it.
struct Table {
    held: Mutex<HashMap<Key, (u64, u32)>>,
    /// Signalled whenever a key is released.
    released: Condvar,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| Table {
    held: Mutex::new(HashMap::new()),
    released: Condvar::new(),
});

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// How often a session waiting for a lock checks whether it must stop
/// (cancel, statement timeout, shutdown).
const WAIT_SLICE: Duration = Duration::from_millis(20);

fn table() -> MutexGuard<'static, HashMap<Key, (u64, u32)>> {
    TABLE.held.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One session's claim on the table; its locks are released when it drops.
pub(super) struct AdvisoryLocks {
    session: u64,
}

impl AdvisoryLocks {
    pub(super) fn new() -> Self {
        AdvisoryLocks {
            session: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Registers the lock functions on `conn` for this session; a wait
    /// for a lock ends when `guard` says the statement must stop.
    pub(super) fn install(&self, conn: &Connection, guard: &Arc<StatementGuard>) -> Result<()> {
        let flags = || FunctionFlags::SQLITE_UTF8;
        let session = self.session;
        for args in [1, 2] {
            // The guard only reads flags and deadlines (see the progress
            // handler): a panic cannot leave it half-changed.
            let guard = std::panic::AssertUnwindSafe(guard.clone());
            conn.create_scalar_function("pg_advisory_lock", args, flags(), move |ctx| {
                lock(session, key(ctx)?, &guard).map(|()| None::<i64>)
            })?;
            conn.create_scalar_function("pg_try_advisory_lock", args, flags(), move |ctx| {
                Ok(try_lock(&mut table(), session, key(ctx)?))
            })?;
            conn.create_scalar_function("pg_advisory_unlock", args, flags(), move |ctx| {
                Ok(unlock(session, key(ctx)?))
            })?;
        }
        conn.create_scalar_function("pg_advisory_unlock_all", 0, flags(), move |_| {
            unlock_all(session);
            Ok(None::<i64>)
        })
    }
}

impl Drop for AdvisoryLocks {
    fn drop(&mut self) {
        unlock_all(self.session);
    }
}

/// A lock's name: one bigint, or two integers, which Postgres keeps apart
/// (`(0, 42)` is not `42`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    One(i64),
    Two(i64, i64),
}

fn key(ctx: &Context<'_>) -> Result<Key> {
    Ok(match ctx.len() {
        1 => Key::One(ctx.get(0)?),
        _ => Key::Two(ctx.get(0)?, ctx.get(1)?),
    })
}

fn try_lock(held: &mut HashMap<Key, (u64, u32)>, session: u64, key: Key) -> bool {
    let entry = held.entry(key).or_insert((session, 0));
    if entry.0 != session {
        return false;
    }
    entry.1 += 1;
    true
}

fn lock(session: u64, key: Key, guard: &StatementGuard) -> Result<()> {
    let mut held = table();
    while !try_lock(&mut held, session, key) {
        if guard.should_stop() {
            return Err(Error::UserFunctionError(
                "canceling statement while waiting for an advisory lock".into(),
            ));
        }
        held = TABLE
            .released
            .wait_timeout(held, WAIT_SLICE)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    Ok(())
}

/// Whether the session held the lock (Postgres answers false otherwise).
fn unlock(session: u64, key: Key) -> bool {
    let mut held = table();
    match held.get_mut(&key) {
        Some((owner, count)) if *owner == session => {
            *count -= 1;
            if *count == 0 {
                held.remove(&key);
                TABLE.released.notify_all();
            }
            true
        }
        _ => false,
    }
}

fn unlock_all(session: u64) {
    let mut held = table();
    let before = held.len();
    held.retain(|_, (owner, _)| *owner != session);
    if held.len() != before {
        TABLE.released.notify_all();
    }
}
