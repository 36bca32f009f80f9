//! What each client session of this server is doing, for
//! `pg_stat_activity`. A session owns an `Arc<SessionActivity>` and
//! updates it per statement with atomic stores (the text under a small
//! lock of its own); the registry's lock is taken only when a session
//! opens or ends and when a statement reads the view. A leaf: it depends
//! on nothing else in sqld.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Postgres' default `track_activity_query_size`: longer texts are cut.
pub const MAX_QUERY_BYTES: usize = 1024;

/// A session's state, as `pg_stat_activity.state` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    Idle = 0,
    Active = 1,
    IdleInTransaction = 2,
    IdleInTransactionAborted = 3,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Active => "active",
            State::IdleInTransaction => "idle in transaction",
            State::IdleInTransactionAborted => "idle in transaction (aborted)",
        }
    }

    fn from_u8(n: u8) -> State {
        match n {
            1 => State::Active,
            2 => State::IdleInTransaction,
            3 => State::IdleInTransactionAborted,
            _ => State::Idle,
        }
    }
}

/// Who a session is: fixed when it authenticates.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The backend pid its BackendKeyData reported.
    pub pid: i32,
    pub user: Option<String>,
    pub application_name: Option<String>,
    pub client: Option<SocketAddr>,
}

/// One session's activity. Times are microseconds since the Unix epoch,
/// 0 for none.
#[derive(Debug)]
pub struct SessionActivity {
    pub identity: Identity,
    pub backend_start: i64,
    state: AtomicU8,
    xact_start: AtomicI64,
    query_start: AtomicI64,
    state_change: AtomicI64,
    query: Mutex<String>,
}

/// Now, in microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// `sql` cut to at most `MAX_QUERY_BYTES`, on a character boundary.
fn truncated(sql: &str) -> &str {
    if sql.len() <= MAX_QUERY_BYTES {
        return sql;
    }
    let mut end = MAX_QUERY_BYTES;
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    &sql[..end]
}

impl SessionActivity {
    fn new(identity: Identity) -> Self {
        let now = now_micros();
        SessionActivity {
            identity,
            backend_start: now,
            state: AtomicU8::new(State::Idle as u8),
            xact_start: AtomicI64::new(0),
            query_start: AtomicI64::new(0),
            state_change: AtomicI64::new(now),
            query: Mutex::new(String::new()),
        }
    }

    /// A statement starts: it is the session's query until the next one.
    pub fn start(&self, sql: &str) {
        let now = now_micros();
        let text = truncated(sql);
        {
            let mut query = self.query.lock().unwrap_or_else(|p| p.into_inner());
            // Most sessions repeat their statements: no copy then.
            if *query != text {
                query.clear();
                query.push_str(text);
            }
        }
        // A statement outside a transaction is a transaction of its own.
        let _ = self
            .xact_start
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.query_start.store(now, Ordering::Relaxed);
        self.set_state(State::Active, now);
    }

    /// The statement ended, leaving the session in `state`.
    pub fn finish(&self, state: State) {
        let now = now_micros();
        if state == State::Idle {
            self.xact_start.store(0, Ordering::Relaxed);
        }
        self.set_state(state, now);
    }

    fn set_state(&self, state: State, now: i64) {
        self.state.store(state as u8, Ordering::Relaxed);
        self.state_change.store(now, Ordering::Relaxed);
    }

    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// A copy of what the view shows.
    pub fn snapshot(&self) -> Snapshot {
        let time = |t: &AtomicI64| Some(t.load(Ordering::Relaxed)).filter(|t| *t != 0);
        Snapshot {
            identity: self.identity.clone(),
            backend_start: self.backend_start,
            state: self.state(),
            xact_start: time(&self.xact_start),
            query_start: time(&self.query_start),
            state_change: time(&self.state_change),
            query: self.query.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub identity: Identity,
    pub backend_start: i64,
    pub state: State,
    pub xact_start: Option<i64>,
    pub query_start: Option<i64>,
    pub state_change: Option<i64>,
    pub query: String,
}

/// Every open session of the server.
#[derive(Debug, Default)]
pub struct Sessions {
    open: Mutex<BTreeMap<u64, Weak<SessionActivity>>>,
    next_key: AtomicI64,
}

/// A session's place in the registry, left when it is dropped (the
/// connection ends).
#[derive(Debug)]
pub struct Registration {
    pub activity: Arc<SessionActivity>,
    key: u64,
    sessions: Arc<Sessions>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.sessions.lock().remove(&self.key);
    }
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Weak<SessionActivity>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn register(self: &Arc<Self>, identity: Identity) -> Registration {
        let activity = Arc::new(SessionActivity::new(identity));
        let key = self.next_key.fetch_add(1, Ordering::Relaxed) as u64;
        self.lock().insert(key, Arc::downgrade(&activity));
        Registration {
            activity,
            key,
            sessions: self.clone(),
        }
    }

    /// The open sessions, oldest first.
    pub fn snapshot(&self) -> Vec<Snapshot> {
        let open: Vec<Arc<SessionActivity>> =
            self.lock().values().filter_map(Weak::upgrade).collect();
        open.iter().map(|a| a.snapshot()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(pid: i32) -> Identity {
        Identity {
            pid,
            user: Some("u".into()),
            application_name: None,
            client: None,
        }
    }

    #[test]
    fn sessions_appear_until_they_end() {
        let sessions = Arc::new(Sessions::default());
        let a = sessions.register(identity(1));
        let b = sessions.register(identity(2));
        let pids =
            |s: &Sessions| -> Vec<i32> { s.snapshot().iter().map(|s| s.identity.pid).collect() };
        assert_eq!(pids(&sessions), [1, 2]);
        drop(a);
        assert_eq!(pids(&sessions), [2]);
        drop(b);
        assert!(pids(&sessions).is_empty());
    }

    #[test]
    fn states_and_transaction_start() {
        let sessions = Arc::new(Sessions::default());
        let r = sessions.register(identity(1));
        let a = &r.activity;
        assert_eq!(a.snapshot().state, State::Idle);
        a.start("begin");
        assert_eq!(a.state(), State::Active);
        a.finish(State::IdleInTransaction);
        let in_txn = a.snapshot();
        assert_eq!(in_txn.state, State::IdleInTransaction);
        assert!(in_txn.xact_start.is_some());
        a.start("select 1");
        assert_eq!(a.snapshot().xact_start, in_txn.xact_start);
        a.finish(State::Idle);
        let idle = a.snapshot();
        assert_eq!((idle.state, idle.xact_start), (State::Idle, None));
        assert_eq!(idle.query, "select 1");
    }

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        let text = "é".repeat(MAX_QUERY_BYTES);
        let cut = truncated(&text);
        assert!(cut.len() <= MAX_QUERY_BYTES && cut.len() >= MAX_QUERY_BYTES - 1);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
