//! The replica's side of write forwarding: a session's statements that
//! write (and every statement of a transaction that has written) go to the
//! primary's `POST /v1/replication/execute` (see `remote` for what the
//! primary does with them), and the client gets the primary's result or
//! error unchanged. Here too the session waits to read its own writes.

use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libsql_sys::rusqlite::types::Value;
use pgwire::api::Type;

use super::status::ReplicaStatus;
use super::wire::{
    ForwardRequest, ForwardResponse, WireResult, WireTxn, WireValue, EPOCH_HEADER, EXECUTE_PATH,
    REPLICA_ID_HEADER,
};
use crate::error::{sqlstate, SqlError};
use crate::metrics::Metrics;
use crate::query::{Column, StatementResult, TxnState};
use crate::scheduler::{ForwardStatement, Forwarded, Upstream};

impl From<WireTxn> for TxnState {
    fn from(t: WireTxn) -> Self {
        match t {
            WireTxn::Idle => TxnState::Idle,
            WireTxn::Active => TxnState::Active,
            WireTxn::Failed => TxnState::Failed,
        }
    }
}

/// Turns the primary's answer back into what the client gets.
pub fn from_wire(result: WireResult) -> Result<StatementResult, SqlError> {
    match result {
        WireResult::Ok { tag, columns, rows } => Ok(StatementResult {
            tag,
            columns: columns.map(|cols| {
                cols.into_iter()
                    .map(|c| Column {
                        name: c.name,
                        ty: Type::from_oid(c.type_oid).unwrap_or(Type::TEXT),
                    })
                    .collect()
            }),
            rows: rows
                .into_iter()
                .map(|row| row.into_iter().map(Value::from).collect())
                .collect(),
            held: Default::default(),
        }),
        WireResult::Err { code, message } => Err(SqlError::new(leak_code(&code), message)),
    }
}

/// SQLSTATEs are five characters from a small set; keep one static copy
/// of each seen.
fn leak_code(code: &str) -> &'static str {
    static CODES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut codes = CODES.lock().expect("codes lock");
    if let Some(c) = codes.iter().find(|c| **c == code) {
        return c;
    }
    let code: &'static str = if code.len() == 5 {
        Box::leak(code.to_owned().into_boxed_str())
    } else {
        sqlstate::INTERNAL_ERROR
    };
    codes.push(code);
    code
}

/// A replica's connection to its primary, for its sessions: where to
/// forward, and how far the replica has applied.
pub struct ReplicaLink {
    status: Arc<ReplicaStatus>,
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    /// Names this replica to the primary, which lets only it continue the
    /// transactions it opened there.
    id: String,
    runtime: tokio::runtime::Handle,
    metrics: Arc<Metrics>,
}

/// How long a read waits for the session's last write to arrive.
const READ_YOUR_WRITES_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a session waiting for the primary's answer looks whether it
/// must stop.
const STOP_POLL: Duration = Duration::from_millis(20);
/// How long past the statement timeout the primary's answer is still
/// awaited: the primary stops the statement at the same deadline, and its
/// answer says for sure that nothing was applied.
const TIMEOUT_GRACE: Duration = Duration::from_secs(2);

impl ReplicaLink {
    pub fn new(
        http: reqwest::Client,
        primary_url: &str,
        token: Option<String>,
        status: Arc<ReplicaStatus>,
        runtime: tokio::runtime::Handle,
        metrics: Arc<Metrics>,
    ) -> Self {
        ReplicaLink {
            status,
            http,
            url: format!("{}{EXECUTE_PATH}", primary_url.trim_end_matches('/')),
            token,
            id: uuid::Uuid::new_v4().to_string(),
            runtime,
            metrics,
        }
    }

    /// Sends one request to the primary and waits for the answer. Called
    /// while a session runs a statement (blocking its thread), so the
    /// request itself runs on the server's main runtime. The wait ends
    /// early when the session must stop: at once for a cancel, a client
    /// gone or a shutdown (dropping the request cancels the statement on
    /// the primary, unless it had finished), shortly after the statement
    /// timeout (the primary stops at the same deadline, and says so).
    fn send(
        &self,
        req: &ForwardRequest,
        stop: &dyn Fn() -> bool,
    ) -> Result<ForwardResponse, SqlError> {
        self.metrics.forwarded_statements.inc();
        let unavailable = |e: String| {
            SqlError::new(
                sqlstate::CONNECTION_FAILURE,
                format!("cannot reach the primary to run a write: {e}"),
            )
        };
        let (http, url, token, id) = (
            self.http.clone(),
            self.url.clone(),
            self.token.clone(),
            self.id.clone(),
        );
        let body = serde_json::to_vec(req).map_err(|e| unavailable(e.to_string()))?;
        let epoch = self.status.epoch.load(std::sync::atomic::Ordering::SeqCst);
        let (done, answer) = std::sync::mpsc::channel();
        let request = async move {
            let mut http = http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(REPLICA_ID_HEADER, id)
                .header(EPOCH_HEADER, epoch)
                .body(body);
            if let Some(t) = &token {
                http = http.bearer_auth(t);
            }
            let response = http.send().await.map_err(|e| unavailable(e.to_string()))?;
            if !response.status().is_success() {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                return Err(unavailable(format!("{status}: {body}")));
            }
            response
                .json::<ForwardResponse>()
                .await
                .map_err(|e| unavailable(e.to_string()))
        };
        let task = self.runtime.spawn(async move {
            let _ = done.send(request.await);
        });
        let timeout_at = req
            .timeout_ms
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        loop {
            match answer.recv_timeout(STOP_POLL) {
                Ok(answer) => return answer,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(unavailable("the request was dropped".to_owned()))
                }
                Err(RecvTimeoutError::Timeout) if !stop() => {}
                Err(RecvTimeoutError::Timeout) => {
                    let primary_stops_too = timeout_at.is_some_and(|at| {
                        let now = Instant::now();
                        now >= at && now < at + TIMEOUT_GRACE
                    });
                    if !primary_stops_too {
                        task.abort();
                        return Err(SqlError::new(
                            sqlstate::QUERY_CANCELED,
                            "canceling statement: the primary cancels it too, \
                             unless it had finished already",
                        ));
                    }
                }
            }
        }
    }
}

impl Upstream for ReplicaLink {
    fn forward(&self, statement: ForwardStatement<'_>) -> Result<Forwarded, SqlError> {
        let request = ForwardRequest {
            session: statement.session.map(str::to_owned),
            begin_after_frame: statement.begin_after_frame,
            sql: statement.sql.to_owned(),
            params: statement.params.iter().map(WireValue::from).collect(),
            column_types: statement
                .column_types
                .map(|types| types.iter().map(Type::oid).collect()),
            sqlite_api: statement.sqlite_api,
            timeout_ms: statement
                .timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        };
        let response = self.send(&request, statement.stop)?;
        Ok(Forwarded {
            result: from_wire(response.result),
            session: response.session,
            txn: response.txn.into(),
            frame_no: response.frame_no,
        })
    }

    fn applied(&self) -> u64 {
        self.status.applied_frame_no.load(Ordering::SeqCst)
    }

    fn wait_for(&self, frame_no: u64) -> Result<(), SqlError> {
        if self.applied() >= frame_no {
            return Ok(());
        }
        self.metrics.read_your_writes_waits.inc();
        if self.status.wait_applied(frame_no, READ_YOUR_WRITES_TIMEOUT) {
            return Ok(());
        }
        Err(SqlError::new(
            sqlstate::SERIALIZATION_FAILURE,
            format!(
                "this replica has not yet applied this session's last write (frame {frame_no}, applied {}); retry, or read from the primary",
                self.applied()
            ),
        ))
    }

    fn generation(&self) -> u64 {
        self.status.generation()
    }
}
