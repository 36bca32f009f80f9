//! The primary's side of write forwarding: runs the statements replicas
//! forward to `POST /v1/replication/execute`, keeping a session for each
//! transaction that stays open.
//!
//! The serializability rule for transactions through a replica: a
//! transaction reads on the replica until its first write. That write
//! carries the frame_no the transaction's reads saw; the primary opens the
//! transaction with `BEGIN IMMEDIATE` (holding the write lock, so nothing
//! can commit meanwhile) and checks that no commit came after that frame.
//! If one did, what the transaction read may be stale: it fails with 40001
//! and the client retries. Otherwise the rest of the transaction runs on
//! the primary, in a remote session kept for it, and its reads see its own
//! writes. Never a silent lost update.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libsql_sys::rusqlite::types::Value;
use pgwire::api::Type;
use tower::ServiceExt;

use super::wire::{ForwardRequest, ForwardResponse, WireColumn, WireResult, WireTxn, WireValue};
use crate::database::Database;
use crate::error::{sqlstate, SqlError};
use crate::query::{ExecuteMode, Outcome, Request, StatementResult, TxnState};
use crate::scheduler::{Query, Session, SessionConfig};
use crate::service::{self, Placement, SessionStack};

/// A remote transaction left idle this long is rolled back, unless the
/// primary's idle-in-transaction timeout says otherwise.
const REMOTE_SESSION_IDLE: Duration = Duration::from_secs(60);
/// How often abandoned remote transactions are looked for.
const REAP_INTERVAL: Duration = Duration::from_secs(1);

impl From<TxnState> for WireTxn {
    fn from(t: TxnState) -> Self {
        match t {
            TxnState::Idle => WireTxn::Idle,
            TxnState::Active => WireTxn::Active,
            TxnState::Failed => WireTxn::Failed,
        }
    }
}

fn to_wire(result: Result<StatementResult, SqlError>) -> WireResult {
    match result {
        Ok(r) => WireResult::Ok {
            tag: r.tag,
            columns: r.columns.map(|cols| {
                cols.into_iter()
                    .map(|c| WireColumn {
                        name: c.name,
                        type_oid: c.ty.oid(),
                    })
                    .collect()
            }),
            rows: r
                .rows
                .iter()
                .map(|row| row.iter().map(WireValue::from).collect())
                .collect(),
        },
        Err(e) => WireResult::Err {
            code: e.code.to_owned(),
            message: e.message,
        },
    }
}

/// The primary's side: runs forwarded statements, keeping a session for
/// each transaction that stays open. A forwarded write transaction holds
/// the primary's write lock, so these sessions are bounded: in number, in
/// idle time (a reaper rolls back one its replica abandoned) and in
/// lifetime, and only the replica that opened one may use it.
pub struct RemoteSessions {
    db: Database,
    limits: SessionConfig,
    bounds: RemoteSessionBounds,
    open: Mutex<HashMap<String, RemoteSession>>,
}

/// How long and how many forwarded transactions may stay open.
#[derive(Debug, Clone, Copy)]
pub struct RemoteSessionBounds {
    pub max_open: usize,
    pub idle_timeout: Duration,
    /// A transaction open longer is rolled back, idle or not.
    pub max_lifetime: Option<Duration>,
}

impl RemoteSessionBounds {
    pub fn new(
        max_open: usize,
        idle_timeout: Option<Duration>,
        max_lifetime: Option<Duration>,
    ) -> Self {
        RemoteSessionBounds {
            max_open,
            idle_timeout: idle_timeout.unwrap_or(REMOTE_SESSION_IDLE),
            max_lifetime,
        }
    }
}

struct RemoteSession {
    /// The session's stack (which owns the session: dropping it rolls the
    /// transaction back).
    stack: SessionStack,
    /// The replica that opened it (its `x-sqld-replica-id`).
    owner: Option<String>,
    opened: Instant,
    last_used: Instant,
}

impl RemoteSessions {
    pub fn new(db: Database, limits: SessionConfig, bounds: RemoteSessionBounds) -> Self {
        RemoteSessions {
            db,
            limits,
            bounds,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Rolls back abandoned transactions until shutdown: a replica that
    /// dies mid-transaction must not hold the write lock.
    pub async fn reap(self: Arc<Self>, mut shutdown: crate::shutdown::Shutdown) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(REAP_INTERVAL) => {}
                _ = shutdown.recv() => return,
            }
            let expired = self.take_expired();
            if !expired.is_empty() {
                tracing::info!(
                    count = expired.len(),
                    "rolling back forwarded transactions left idle or open too long"
                );
                // Closing a session's connection rolls its transaction back;
                // that is SQLite work, off the runtime.
                let _ = tokio::task::spawn_blocking(move || drop(expired)).await;
            }
        }
    }

    fn take_expired(&self) -> Vec<RemoteSession> {
        let bounds = self.bounds;
        let mut open = self.open.lock().expect("sessions lock");
        let ids: Vec<String> = open
            .iter()
            .filter(|(_, s)| {
                s.last_used.elapsed() >= bounds.idle_timeout
                    || bounds.max_lifetime.is_some_and(|l| s.opened.elapsed() >= l)
            })
            .map(|(id, _)| id.clone())
            .collect();
        ids.iter().filter_map(|id| open.remove(id)).collect()
    }

    /// Forwarded transactions open now.
    pub fn open_count(&self) -> usize {
        self.open.lock().expect("sessions lock").len()
    }

    async fn run(
        &self,
        stack: &SessionStack,
        request: Request,
        timeout: Option<Duration>,
    ) -> Result<(Vec<Result<StatementResult, SqlError>>, TxnState), SqlError> {
        let (cancel, canceled) = futures::channel::oneshot::channel();
        // A replica that stops waiting (its client canceled or left) drops
        // the HTTP request, and with it this future: the statement is
        // canceled here too rather than applied after the replica's client
        // was told it was not.
        let _cancel_on_drop = CancelOnDrop(Some(cancel));
        let query = Query {
            request,
            cancel: Some(canceled),
            timeout,
        };
        let response = stack.clone().oneshot(query).await?;
        match response.outcome {
            Outcome::Executed(results) => Ok((results, response.txn)),
            Outcome::Prepared(_) => Err(SqlError::new(
                sqlstate::INTERNAL_ERROR,
                "unexpected prepare result",
            )),
        }
    }

    fn execute_request(sql: &str, params: Vec<Value>, column_types: Option<Vec<Type>>) -> Request {
        Request::Execute {
            sql: sql.to_owned(),
            params,
            mode: ExecuteMode::Single,
            column_types,
        }
    }

    /// Runs one forwarded statement for the replica named `owner`.
    pub async fn execute(&self, req: ForwardRequest, owner: Option<String>) -> ForwardResponse {
        let frame_no = |db: &Database| db.log().map(|l| l.info().current_frame_no).unwrap_or(0);
        let failed = |code: &'static str, message: String, txn| ForwardResponse {
            session: None,
            result: WireResult::Err {
                code: code.to_owned(),
                message,
            },
            txn,
            frame_no: frame_no(&self.db),
        };
        let existing = req.session.as_ref().and_then(|id| {
            let mut open = self.open.lock().expect("sessions lock");
            match open.get(id) {
                Some(s) if s.owner == owner => open.remove(id),
                _ => None,
            }
        });
        let (stack, opened) = match (existing, &req.session) {
            (Some(s), _) => (s.stack, s.opened),
            (None, Some(_)) => {
                return failed(
                    sqlstate::SERIALIZATION_FAILURE,
                    "the transaction's session on the primary has expired".to_owned(),
                    WireTxn::Failed,
                )
            }
            (None, None) => match Session::open(
                &self.db,
                SessionConfig {
                    sqlite_api: req.sqlite_api,
                    ..self.limits.clone()
                },
            ) {
                // Off the HTTP server's threads: statements block in SQLite.
                Ok(s) => (
                    service::session_stack(s, Placement::Blocking),
                    Instant::now(),
                ),
                Err(e) => return failed(sqlstate::IO_ERROR, e.to_string(), WireTxn::Idle),
            },
        };
        let timeout = req.timeout_ms.map(Duration::from_millis);
        if let Some(read_frame) = req.begin_after_frame {
            if let Err(e) = self.begin_checked(&stack, read_frame, timeout).await {
                return ForwardResponse {
                    session: None,
                    result: to_wire(Err(e)),
                    txn: WireTxn::Failed,
                    frame_no: frame_no(&self.db),
                };
            }
        }
        let params = req.params.into_iter().map(Value::from).collect();
        let column_types = req.column_types.map(|oids| {
            oids.into_iter()
                .map(|o| Type::from_oid(o).unwrap_or(Type::TEXT))
                .collect()
        });
        let request = Self::execute_request(&req.sql, params, column_types);
        let (result, txn) = match self.run(&stack, request, timeout).await {
            Ok((mut results, txn)) => (results.pop().unwrap_or_else(|| Ok(empty())), txn),
            Err(e) => (Err(e), TxnState::Failed),
        };
        if txn == TxnState::Idle {
            return ForwardResponse {
                session: None,
                result: to_wire(result),
                txn: txn.into(),
                frame_no: frame_no(&self.db),
            };
        }
        let new = req.session.is_none();
        let id = req
            .session
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let entry = RemoteSession {
            stack,
            owner,
            opened,
            last_used: Instant::now(),
        };
        if let Err(refused) = self.keep_open(id.clone(), entry, new) {
            // Dropping the session rolls its transaction back.
            let _ = tokio::task::spawn_blocking(move || drop(refused)).await;
            return failed(
                sqlstate::TOO_MANY_CONNECTIONS,
                format!(
                    "too many forwarded transactions open on the primary (at most {}); retry",
                    self.bounds.max_open
                ),
                WireTxn::Failed,
            );
        }
        ForwardResponse {
            session: Some(id),
            result: to_wire(result),
            txn: txn.into(),
            frame_no: frame_no(&self.db),
        }
    }

    /// Keeps a transaction's session for its next statement, unless a new
    /// one would exceed the bound (then it is handed back).
    fn keep_open(&self, id: String, entry: RemoteSession, new: bool) -> Result<(), RemoteSession> {
        let mut open = self.open.lock().expect("sessions lock");
        if new && open.len() >= self.bounds.max_open {
            return Err(entry);
        }
        open.insert(id, entry);
        Ok(())
    }

    /// Opens a write transaction and checks nothing committed after the
    /// frame the replica's reads saw.
    async fn begin_checked(
        &self,
        stack: &SessionStack,
        read_frame: u64,
        timeout: Option<Duration>,
    ) -> Result<(), SqlError> {
        let (mut results, _) = self
            .run(
                stack,
                Self::execute_request("BEGIN IMMEDIATE", Vec::new(), None),
                timeout,
            )
            .await?;
        results.pop().unwrap_or_else(|| Ok(empty()))?;
        let latest = self
            .db
            .log()
            .map(|log| log.lock_appends().last_frame_no())
            .unwrap_or(0);
        if latest > read_frame {
            let _ = self
                .run(
                    stack,
                    Self::execute_request("ROLLBACK", Vec::new(), None),
                    None,
                )
                .await;
            return Err(SqlError::new(
                sqlstate::SERIALIZATION_FAILURE,
                format!(
                    "could not serialize access: the transaction read a replica at frame {read_frame}, \
                     and the primary has committed up to frame {latest} since; retry the transaction"
                ),
            ));
        }
        Ok(())
    }
}

fn empty() -> StatementResult {
    StatementResult {
        tag: String::new(),
        columns: None,
        rows: Vec::new(),
        held: Default::default(),
    }
}

/// Cancels the statement its receiver belongs to when dropped; harmless
/// once the statement is over.
struct CancelOnDrop(Option<futures::channel::oneshot::Sender<()>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(cancel) = self.0.take() {
            let _ = cancel.send(());
        }
    }
}
