//! COPY FROM STDIN and COPY TO STDOUT. Both run as ordinary statements
//! down the session's own stack, so a replica forwards them as it forwards
//! any write and the primary's transaction rules apply: COPY FROM turns the
//! rows into batches of parameterised multi-row INSERTs (values sent as
//! text, typed by the table's declared column types), run as they arrive
//! inside one transaction (its own, or the client's); COPY TO runs a
//! SELECT and writes its rows one CopyData at a time. Text, CSV and
//! binary formats.

mod binary;
mod format;
mod statement;

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::BufMut;
use futures::{Sink, SinkExt};
use libsql_sys::rusqlite::types::Value;
use pgwire::api::copy::CopyHandler;
use pgwire::api::{ClientInfo, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail, CopyInResponse, CopyOutResponse};
use pgwire::messages::response::{CommandComplete, TransactionStatus};
use pgwire::messages::PgWireBackendMessage;

use self::binary::{BinaryDecoder, BinaryRow};
use self::format::{Decoder, FormatError, Options};
use self::statement::{CopyStatement, Source};
use super::reply::{error_response, pg_status, ready};
use crate::error::{sqlstate, SqlError};
use crate::query::{Column, ExecuteMode, Outcome, Request, Response, StatementResult, TxnState};
use crate::types;

pub use statement::is_copy;

/// What COPY needs of the query handler: a request run down the
/// connection's session stack.
#[async_trait]
pub trait Runner: Send + Sync + 'static {
    async fn run_request<C: ClientInfo + Sync + ?Sized>(
        &self,
        client: &C,
        request: Request,
    ) -> Result<Response, SqlError>;
}

/// A batch of rows is run when it reaches any of these.
const BATCH_ROWS: usize = 500;
const BATCH_PARAMS: usize = 16_000;
const BATCH_BYTES: usize = 1 << 20;
/// One row longer than this is refused rather than held.
const MAX_ROW_BYTES: usize = 64 << 20;

/// Runs a statement that fails, so that the session's transaction is
/// failed as Postgres fails it after an error (a later COMMIT rolls back).
const FAIL_TRANSACTION: &str = "SELECT json('COPY failed')";

/// A COPY FROM STDIN in progress on a connection.
struct CopyIn {
    label: String,
    columns: Vec<Column>,
    /// `INSERT INTO t (a, b) VALUES `
    insert: String,
    decoder: Input,
    params: Vec<Value>,
    batch_rows: usize,
    batch_bytes: usize,
    rows: u64,
    /// The COPY began its own transaction (the session was idle).
    owns_txn: bool,
    extended: bool,
    txn: TxnState,
}

/// Where a COPY FROM's rows are cut from: text or CSV, or binary.
enum Input {
    Text(Decoder),
    Binary(BinaryDecoder),
}

impl Input {
    fn new(options: Options) -> Self {
        match options.binary {
            true => Input::Binary(BinaryDecoder::default()),
            false => Input::Text(Decoder::new(options)),
        }
    }

    fn is_binary(&self) -> bool {
        matches!(self, Input::Binary(_))
    }

    fn feed(&mut self, bytes: &[u8]) {
        match self {
            Input::Text(d) => d.feed(bytes),
            Input::Binary(d) => d.feed(bytes),
        }
    }

    fn held(&self) -> usize {
        match self {
            Input::Text(d) => d.held(),
            Input::Binary(d) => d.held(),
        }
    }

    /// Lines (rows, in binary) read so far.
    fn line(&self) -> u64 {
        match self {
            Input::Text(d) => d.line,
            Input::Binary(d) => d.line,
        }
    }

    fn next_row(&mut self) -> Result<Option<BinaryRow>, FormatError> {
        match self {
            Input::Text(d) => Ok(d.next_row()?.map(as_bytes)),
            Input::Binary(d) => d.next_row(),
        }
    }

    /// At the end of input: the last row, if the text had no newline.
    fn finish(&mut self) -> Result<Option<BinaryRow>, FormatError> {
        match self {
            Input::Text(d) => Ok(d.finish()?.map(as_bytes)),
            Input::Binary(d) => d.finish().map(|()| None),
        }
    }
}

fn as_bytes(row: Vec<Option<String>>) -> BinaryRow {
    row.into_iter().map(|f| f.map(String::into_bytes)).collect()
}

/// The format code of CopyInResponse and CopyOutResponse.
fn format_code(options: &Options) -> i16 {
    options.binary as i16
}

/// The connection's COPY FROM in progress, if any (taken out while a
/// message is handled, so no lock is held across an await).
#[derive(Default)]
struct Slot(Mutex<Option<CopyIn>>);

impl Slot {
    fn of<C: ClientInfo + Sync + ?Sized>(client: &C) -> Arc<Slot> {
        client
            .session_extensions()
            .get_or_insert_with(Slot::default)
    }

    fn take(&self) -> Option<CopyIn> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }

    fn put(&self, copy: CopyIn) {
        if let Ok(mut s) = self.0.lock() {
            *s = Some(copy);
        }
    }
}

/// Why a COPY stopped: an error for the client, or the wire failing.
enum Failure {
    Sql(SqlError),
    Wire(PgWireError),
}

impl From<SqlError> for Failure {
    fn from(e: SqlError) -> Self {
        Failure::Sql(e)
    }
}

impl From<PgWireError> for Failure {
    fn from(e: PgWireError) -> Self {
        Failure::Wire(e)
    }
}

fn internal(message: &str) -> SqlError {
    SqlError::new(sqlstate::INTERNAL_ERROR, message)
}

/// Runs one statement down the session's stack.
async fn execute<C: ClientInfo + Sync + ?Sized>(
    handler: &impl Runner,
    client: &C,
    sql: String,
    params: Vec<Value>,
) -> Result<(StatementResult, TxnState), SqlError> {
    let request = Request::Execute {
        sql,
        params,
        mode: ExecuteMode::Single,
        column_types: None,
    };
    let response = handler.run_request(client, request).await?;
    let Outcome::Executed(mut results) = response.outcome else {
        return Err(internal("COPY's statement returned no result"));
    };
    let result = results
        .pop()
        .unwrap_or_else(|| Ok(StatementResult::no_rows("")))?;
    Ok((result, response.txn))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn column_list(columns: &[String]) -> String {
    match columns.is_empty() {
        true => "*".to_owned(),
        false => columns.join(", "),
    }
}

/// Starts the COPY statement `sql` (simple protocol, or a portal's
/// Execute when `extended`).
pub async fn start<C>(
    handler: &impl Runner,
    client: &mut C,
    sql: &str,
    extended: bool,
) -> PgWireResult<()>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    settle(handler, client).await;
    let started = match statement::parse(sql) {
        Ok(copy) if copy.to => copy_out(handler, client, &copy, extended).await,
        Ok(copy) => copy_in(handler, client, copy, extended).await,
        Err(e) => Err(Failure::Sql(e)),
    };
    match started {
        Ok(()) => Ok(()),
        Err(Failure::Wire(e)) => Err(e),
        // pgwire answers an Execute's error and waits for Sync.
        Err(Failure::Sql(e)) if extended => Err(e.into()),
        Err(Failure::Sql(e)) => {
            client.feed(error_response(e)).await?;
            let status = client.transaction_status().to_error_state();
            ready(client, status).await
        }
    }
}

/// COPY TO STDOUT: the rows of a SELECT, one CopyData each.
async fn copy_out<C>(
    handler: &impl Runner,
    client: &mut C,
    copy: &CopyStatement,
    extended: bool,
) -> Result<(), Failure>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let sql = match &copy.source {
        Source::Table { name, columns } => format!("SELECT {} FROM {name}", column_list(columns)),
        Source::Query(query) => query.clone(),
    };
    let (result, txn) = execute(handler, client, sql, Vec::new()).await?;
    client.set_transaction_status(pg_status(txn));
    let StatementResult {
        columns,
        rows,
        held,
        ..
    } = result;
    let _budget = held;
    let columns = columns.unwrap_or_default();
    let n = columns.len();
    let options = &copy.options;
    let format = format_code(options);
    let response = CopyOutResponse::new(format as i8, n as i16, vec![format; n]);
    client
        .feed(PgWireBackendMessage::CopyOutResponse(response))
        .await
        .map_err(PgWireError::from)?;
    if options.binary {
        let count = copy_out_binary(client, &columns, rows).await?;
        return copy_out_done(client, count, extended).await;
    }
    let mut line = Vec::new();
    if options.header {
        format::encode_row(
            &mut line,
            columns.iter().map(|c| Some(c.name.as_bytes())),
            options,
        );
        send_data(client, &mut line).await?;
    }
    let mut field = bytes::BytesMut::new();
    let mut count = 0u64;
    for row in rows {
        let mut texts: Vec<Option<Vec<u8>>> = Vec::with_capacity(row.len());
        for (value, column) in row.iter().zip(&columns) {
            if let Value::Null = value {
                texts.push(None);
                continue;
            }
            field.clear();
            types::encode_field(&mut field, value, &column.ty, false)?;
            texts.push(Some(field.get(4..).unwrap_or_default().to_vec()));
        }
        format::encode_row(&mut line, texts.iter().map(|t| t.as_deref()), options);
        send_data(client, &mut line).await?;
        count += 1;
    }
    copy_out_done(client, count, extended).await
}

/// The rows of a binary COPY TO, after its header, one CopyData each, and
/// its trailer; how many rows.
async fn copy_out_binary<C>(
    client: &mut C,
    columns: &[Column],
    rows: Vec<Vec<Value>>,
) -> Result<u64, Failure>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let mut buf = bytes::BytesMut::new();
    binary::header(&mut buf);
    let mut count = 0u64;
    for row in rows {
        buf.put_i16(row.len() as i16);
        for (value, column) in row.iter().zip(columns) {
            types::encode_field(&mut buf, value, &column.ty, true)?;
        }
        send_data(client, &mut buf.split().to_vec()).await?;
        count += 1;
    }
    binary::trailer(&mut buf);
    send_data(client, &mut buf.split().to_vec()).await?;
    Ok(count)
}

/// CopyDone, the command's tag, and for a simple query ReadyForQuery.
async fn copy_out_done<C>(client: &mut C, count: u64, extended: bool) -> Result<(), Failure>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    client
        .feed(PgWireBackendMessage::CopyDone(CopyDone::new()))
        .await
        .map_err(PgWireError::from)?;
    client
        .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
            format!("COPY {count}"),
        )))
        .await
        .map_err(PgWireError::from)?;
    if !extended {
        let status = client.transaction_status();
        ready(client, status).await?;
    }
    Ok(())
}

async fn send_data<C>(client: &mut C, line: &mut Vec<u8>) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let data = CopyData::new(bytes::Bytes::from(std::mem::take(line)));
    client.feed(PgWireBackendMessage::CopyData(data)).await?;
    Ok(())
}

/// COPY FROM STDIN: learns the columns, begins a transaction if the
/// session has none, and asks the client for the data.
async fn copy_in<C>(
    handler: &impl Runner,
    client: &mut C,
    copy: CopyStatement,
    extended: bool,
) -> Result<(), Failure>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let label = copy.label().to_owned();
    let Source::Table { name, columns } = copy.source else {
        return Err(internal("COPY FROM without a table").into());
    };
    let probe = format!("SELECT {} FROM {name} LIMIT 0", column_list(&columns));
    let (described, txn) = execute(handler, client, probe, Vec::new()).await?;
    let found = described.columns.unwrap_or_default();
    let names = match columns.is_empty() {
        true => found.iter().map(|c| quote_ident(&c.name)).collect(),
        false => columns,
    };
    let owns_txn = txn == TxnState::Idle;
    let txn = match owns_txn {
        true => {
            execute(handler, client, "BEGIN".to_owned(), Vec::new())
                .await?
                .1
        }
        false => txn,
    };
    let n = found.len();
    let format = format_code(&copy.options);
    let response = CopyInResponse::new(format as i8, n as i16, vec![format; n]);
    client
        .send(PgWireBackendMessage::CopyInResponse(response))
        .await
        .map_err(PgWireError::from)?;
    client.set_state(PgWireConnectionState::CopyInProgress(extended));
    Slot::of(client).put(CopyIn {
        label,
        insert: format!("INSERT INTO {name} ({}) VALUES ", names.join(", ")),
        columns: found,
        decoder: Input::new(copy.options),
        params: Vec::new(),
        batch_rows: 0,
        batch_bytes: 0,
        rows: 0,
        owns_txn,
        extended,
        txn,
    });
    Ok(())
}

impl CopyIn {
    /// Takes in one CopyData, running every batch it fills.
    async fn absorb<C: ClientInfo + Sync + ?Sized>(
        &mut self,
        handler: &impl Runner,
        client: &C,
        data: &[u8],
    ) -> Result<(), SqlError> {
        self.decoder.feed(data);
        while let Some(row) = self.decoder.next_row().map_err(|e| self.format_error(e))? {
            self.push(row)?;
            if self.batch_full() {
                self.flush(handler, client).await?;
            }
        }
        if self.decoder.held() > MAX_ROW_BYTES {
            return Err(SqlError::new(
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "COPY row longer than {MAX_ROW_BYTES} bytes ({})",
                    self.context()
                ),
            ));
        }
        Ok(())
    }

    fn context(&self) -> String {
        format!("COPY {}, line {}", self.label, self.decoder.line())
    }

    fn format_error(&self, e: format::FormatError) -> SqlError {
        SqlError::new(e.code, format!("{} ({})", e.message, self.context()))
    }

    fn push(&mut self, row: BinaryRow) -> Result<(), SqlError> {
        if row.len() < self.columns.len() {
            let missing = &self.columns[row.len()].name;
            return Err(SqlError::new(
                sqlstate::BAD_COPY_FILE_FORMAT,
                format!("missing data for column \"{missing}\" ({})", self.context()),
            ));
        }
        if row.len() > self.columns.len() {
            return Err(SqlError::new(
                sqlstate::BAD_COPY_FILE_FORMAT,
                format!("extra data after last expected column ({})", self.context()),
            ));
        }
        let binary = self.decoder.is_binary();
        for (field, column) in row.into_iter().zip(&self.columns) {
            let Some(bytes) = field else {
                self.params.push(Value::Null);
                continue;
            };
            self.batch_bytes += bytes.len();
            let value = types::decode_param(Some(&bytes), &column.ty, binary).map_err(|e| {
                let what = match binary {
                    true => format!("invalid binary input for type {}", column.ty.name()),
                    false => format!(
                        "invalid input syntax for type {}: \"{}\"",
                        column.ty.name(),
                        String::from_utf8_lossy(&bytes)
                    ),
                };
                SqlError::new(
                    e.code,
                    format!("{what} ({}, column {})", self.context(), column.name),
                )
            })?;
            self.params.push(value);
        }
        self.batch_rows += 1;
        Ok(())
    }

    fn batch_full(&self) -> bool {
        self.batch_rows >= BATCH_ROWS
            || self.params.len() + self.columns.len() > BATCH_PARAMS
            || self.batch_bytes >= BATCH_BYTES
    }

    /// Inserts the rows held, as one multi-row INSERT.
    async fn flush<C: ClientInfo + Sync + ?Sized>(
        &mut self,
        handler: &impl Runner,
        client: &C,
    ) -> Result<(), SqlError> {
        if self.batch_rows == 0 {
            return Ok(());
        }
        let width = self.columns.len();
        let mut sql = String::with_capacity(self.insert.len() + self.params.len() * 6);
        sql.push_str(&self.insert);
        for row in 0..self.batch_rows {
            sql.push_str(if row == 0 { "(" } else { ", (" });
            for col in 0..width {
                if col > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${}", row * width + col + 1));
            }
            sql.push(')');
        }
        let params = std::mem::take(&mut self.params);
        let (_, txn) = execute(handler, client, sql, params).await?;
        self.txn = txn;
        self.rows += self.batch_rows as u64;
        self.batch_rows = 0;
        self.batch_bytes = 0;
        Ok(())
    }

    /// At CopyDone: the last rows, then COMMIT if the COPY began the
    /// transaction. The tag and the transaction state after.
    async fn finish<C: ClientInfo + Sync + ?Sized>(
        &mut self,
        handler: &impl Runner,
        client: &C,
    ) -> Result<(String, TxnState), SqlError> {
        if let Some(row) = self.decoder.finish().map_err(|e| self.format_error(e))? {
            self.push(row)?;
        }
        self.flush(handler, client).await?;
        if self.owns_txn {
            self.txn = execute(handler, client, "COMMIT".to_owned(), Vec::new())
                .await?
                .1;
        }
        Ok((format!("COPY {}", self.rows), self.txn))
    }

    /// Undoes the COPY: its own transaction rolled back, or the client's
    /// failed. The status ReadyForQuery reports after.
    async fn abort<C: ClientInfo + Sync + ?Sized>(
        &self,
        handler: &impl Runner,
        client: &C,
    ) -> TransactionStatus {
        let sql = if self.owns_txn {
            "ROLLBACK"
        } else {
            FAIL_TRANSACTION
        };
        let request = Request::Execute {
            sql: sql.to_owned(),
            params: Vec::new(),
            mode: ExecuteMode::Single,
            column_types: None,
        };
        match handler.run_request(client, request).await {
            Ok(response) => pg_status(response.txn),
            Err(_) if self.owns_txn => TransactionStatus::Idle,
            Err(_) => TransactionStatus::Error,
        }
    }
}

/// A COPY FROM left behind (the client sent another kind of message in
/// the middle of it, which pgwire refused): undone before anything else.
pub async fn settle<C: ClientInfo + Sync + ?Sized>(handler: &impl Runner, client: &C) {
    if matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
        return;
    }
    let Some(slot) = client.session_extensions().get::<Slot>() else {
        return;
    };
    if let Some(copy) = slot.take() {
        copy.abort(handler, client).await;
    }
}

/// Ends a failed COPY FROM: undone, the error reported, and (when the
/// client waits for it and pgwire will not send it) ReadyForQuery.
async fn fail<C>(
    handler: &impl Runner,
    client: &mut C,
    copy: CopyIn,
    error: SqlError,
    send_ready: bool,
) -> PgWireResult<()>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let status = copy.abort(handler, client).await;
    client.set_transaction_status(status);
    client.feed(error_response(error)).await?;
    if copy.extended {
        // Later CopyData and CopyDone are ignored until Sync.
        client.set_state(PgWireConnectionState::AwaitingSync);
    } else if send_ready {
        ready(client, status).await?;
    } else {
        client.set_state(PgWireConnectionState::ReadyForQuery);
    }
    Ok(())
}

fn no_copy_in_progress() -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        sqlstate::PROTOCOL_VIOLATION.to_owned(),
        "no COPY FROM STDIN is in progress".to_owned(),
    )))
}

/// pgwire's copy handler: CopyData, CopyDone and CopyFail of a COPY FROM.
pub struct Copier<H> {
    handler: Arc<H>,
}

impl<H: Runner> Copier<H> {
    pub fn new(handler: Arc<H>) -> Self {
        Copier { handler }
    }
}

#[async_trait]
impl<H: Runner> CopyHandler for Copier<H> {
    async fn on_copy_data<C>(&self, client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let slot = Slot::of(client);
        let Some(mut copy) = slot.take() else {
            return Err(no_copy_in_progress());
        };
        match copy
            .absorb(self.handler.as_ref(), client, &copy_data.data)
            .await
        {
            Ok(()) => {
                slot.put(copy);
                Ok(())
            }
            Err(e) => fail(self.handler.as_ref(), client, copy, e, true).await,
        }
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(mut copy) = Slot::of(client).take() else {
            return Err(no_copy_in_progress());
        };
        match copy.finish(self.handler.as_ref(), client).await {
            Ok((tag, txn)) => {
                client.set_transaction_status(pg_status(txn));
                client
                    .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                        tag,
                    )))
                    .await?;
                Ok(())
            }
            // pgwire sends ReadyForQuery after CopyDone (simple protocol).
            Err(e) => fail(self.handler.as_ref(), client, copy, e, false).await,
        }
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(copy) = Slot::of(client).take() {
            let status = copy.abort(self.handler.as_ref(), client).await;
            client.set_transaction_status(status);
        }
        PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".to_owned(),
            sqlstate::QUERY_CANCELED.to_owned(),
            format!("COPY from stdin failed: {}", fail.message),
        )))
    }
}
