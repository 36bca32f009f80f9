//! Where a Postgres message becomes a `Query`: the simple and extended
//! query handlers. They open the session (and its tower stack, see
//! `service`) on first use, send `Query` requests down that stack,
//! and turn results into RowDescription/DataRow/CommandComplete messages,
//! keeping ReadyForQuery's transaction status true to the session's state.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;
use futures::{Sink, SinkExt, StreamExt};
use libsql_sys::rusqlite::types::Value;
use pgwire::api::portal::{Format, Portal, PortalExecutionState};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DescribePortalResponse, DescribeStatementResponse, FieldInfo, QueryResponse,
    Response as PgResponse, SendableRowStream,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionHandle, PgWireConnectionState, Type, DEFAULT_NAME,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::{DataRow, NoData, ParameterDescription, RowDescription};
use pgwire::messages::extendedquery::{
    Close, CloseComplete, Describe, Execute, Parse, ParseComplete, PortalSuspended,
    TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};
use pgwire::messages::response::{CommandComplete, EmptyQueryResponse};
use pgwire::messages::simplequery::Query as SimpleQuery;
use pgwire::messages::PgWireBackendMessage;
use tower::ServiceExt;

use super::copy::Runner;
use super::reply::{error_response, pg_status, ready};
use super::statements::PreparedNames;
use crate::activity::Registration;
use crate::database::Database;
use crate::error::SqlError;
use crate::query::{
    Column, ExecuteMode, Outcome, PreparedStatement, Request, Response, StatementResult,
};
use crate::scheduler::{Query, Session, SessionConfig};
use crate::service::{self, Placement, SessionStack};
use crate::{sql, types};

/// Handles every query message of every connection; per-connection state
/// (the session, portals) lives in the connection's pgwire client.
pub struct SqlHandler {
    db: Database,
    limits: SessionConfig,
}

impl SqlHandler {
    pub fn new(db: Database, limits: SessionConfig) -> Self {
        SqlHandler { db, limits }
    }

    /// The connection's session's stack, the session opened on first use.
    /// The session itself is kept beside it, for the connection driver.
    async fn session<C: ClientInfo + ?Sized>(&self, client: &C) -> Result<SessionStack, SqlError> {
        if let Some(stack) = client.session_extensions().get::<SessionStack>() {
            return Ok((*stack).clone());
        }
        let activity = client
            .session_extensions()
            .get::<Registration>()
            .map(|r| r.activity.clone());
        let limits = SessionConfig {
            sqlite_api: super::sqlite_api::negotiated(client),
            activity,
            ..self.limits.clone()
        };
        let session = Session::open(&self.db, limits)
            .map_err(|e| SqlError::new(crate::error::sqlstate::IO_ERROR, e.to_string()))?;
        if let Some(socket) = client
            .session_extensions()
            .get::<super::connection::ClientSocket>()
        {
            session.watch_client(socket.0);
        }
        let stack = service::session_stack(session.clone(), Placement::Inline);
        client.session_extensions().insert(session);
        client.session_extensions().insert(stack.clone());
        Ok(stack)
    }

    /// Sends a request down the stack; a CancelRequest for this connection
    /// stops its statement.
    async fn run<C: ClientInfo + ?Sized>(
        &self,
        client: &C,
        request: Request,
    ) -> Result<Response, SqlError> {
        let stack = self.session(client).await?;
        let cancel = match client.session_extensions().get::<Arc<ConnectionHandle>>() {
            Some(handle) => Some(handle.start_query().await),
            None => None,
        };
        stack
            .oneshot(Query {
                request,
                cancel,
                timeout: None,
            })
            .await
    }

    /// The schema of each table `compat::translate_batch` is to add a
    /// constraint to, read in the session (a table it cannot read is left
    /// out: its statement then runs as sent and fails).
    async fn table_schemas<C: ClientInfo + ?Sized>(
        &self,
        client: &C,
        tables: Vec<String>,
    ) -> HashMap<String, crate::compat::TableSchema> {
        let mut schemas = HashMap::new();
        for table in tables {
            let request = Request::Execute {
                sql: crate::compat::SCHEMA_QUERY.to_owned(),
                params: vec![Value::Text(table.clone())],
                mode: ExecuteMode::Single,
                column_types: None,
            };
            let Ok(Response {
                outcome: Outcome::Executed(mut results),
                ..
            }) = self.run(client, request).await
            else {
                continue;
            };
            let Some(Ok(result)) = results.pop() else {
                continue;
            };
            let rows = result.rows.iter().filter_map(|row| match row.as_slice() {
                [Value::Text(kind), Value::Text(sql)] => Some((kind.clone(), sql.clone())),
                _ => None,
            });
            schemas.insert(table.to_lowercase(), rows.collect());
        }
        schemas
    }
}

fn field_infos(columns: &[Column], format: &Format) -> Vec<FieldInfo> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            FieldInfo::new(
                c.name.clone(),
                None,
                None,
                c.ty.clone(),
                format.format_for(i),
            )
        })
        .collect()
}

fn row_description(fields: &[FieldInfo]) -> PgWireBackendMessage {
    PgWireBackendMessage::RowDescription(RowDescription::new(
        fields.iter().map(Into::into).collect(),
    ))
}

/// Encodes one row as it is sent: rows are never all encoded at once, so
/// a result is held once (as values, within the session's budget), not
/// twice. `tagged`: the client speaks the SQLite API dialect
/// (`sqlite_api`).
fn encode_row(
    row: &[Value],
    columns: &[Column],
    format: &Format,
    tagged: bool,
) -> Result<DataRow, SqlError> {
    let mut buf = BytesMut::with_capacity(16 * row.len());
    for (i, value) in row.iter().enumerate() {
        if tagged {
            types::encode_tagged_field(&mut buf, value);
        } else {
            types::encode_field(&mut buf, value, &columns[i].ty, format.is_binary(i))?;
        }
    }
    Ok(DataRow::new(buf, row.len() as i16))
}

/// A result's rows as the stream a portal keeps, encoded one at a time as
/// they are fetched; the rows' budget is given back when it is dropped.
fn row_stream(result: StatementResult, format: Format, tagged: bool) -> SendableRowStream {
    let StatementResult {
        columns,
        rows,
        held,
        ..
    } = result;
    let columns = columns.unwrap_or_default();
    let rows = rows.into_iter().map(move |row| {
        let _budget = &held;
        encode_row(&row, &columns, &format, tagged).map_err(PgWireError::from)
    });
    Box::pin(futures::stream::iter(rows))
}

/// `SELECT 3` -> `SELECT`, `INSERT 0 3` -> `INSERT 0`: the tag without its
/// row count, which is re-added for each (possibly partial) fetch.
fn tag_prefix(tag: &str) -> &str {
    match tag.rsplit_once(' ') {
        Some((prefix, count)) if count.bytes().all(|b| b.is_ascii_digit()) => prefix,
        _ => tag,
    }
}

/// Sends one statement's result of a simple query: rows are encoded and
/// written (the socket's buffer flushing as it fills) one at a time, each
/// dropped once sent.
async fn send_result<C>(client: &mut C, result: StatementResult, tagged: bool) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let tag = CommandComplete::new(result.tag.clone());
    if let Some(columns) = &result.columns {
        let fields = field_infos(columns, &Format::UnifiedText);
        client.feed(row_description(&fields)).await?;
        let mut rows = row_stream(result, Format::UnifiedText, tagged);
        while let Some(row) = rows.next().await {
            match row {
                Ok(row) => client.feed(PgWireBackendMessage::DataRow(row)).await?,
                Err(e) => {
                    let info: pgwire::error::ErrorInfo = e.into();
                    client
                        .feed(PgWireBackendMessage::ErrorResponse(info.into()))
                        .await?;
                    return Ok(());
                }
            }
        }
    }
    client
        .feed(PgWireBackendMessage::CommandComplete(tag))
        .await?;
    Ok(())
}

#[async_trait]
impl Runner for SqlHandler {
    async fn run_request<C: ClientInfo + Sync + ?Sized>(
        &self,
        client: &C,
        request: Request,
    ) -> Result<Response, SqlError> {
        self.run(client, request).await
    }
}

#[async_trait]
impl SimpleQueryHandler for SqlHandler {
    async fn on_query<C>(&self, client: &mut C, query: SimpleQuery) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        if super::copy::is_copy(&query.query) {
            return super::copy::start(self, client, &query.query, false).await;
        }
        super::copy::settle(self, client).await;
        client.set_state(PgWireConnectionState::QueryInProgress);
        let status = if sql::is_blank(&query.query) {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
            client.transaction_status()
        } else {
            if sql::may_release_statements(&query.query) {
                let prepared = PreparedNames::of(client);
                for piece in sql::split_statements(&query.query) {
                    if let Some(released) = sql::released_statements(piece) {
                        prepared.release(client, &released);
                    }
                }
            }
            let sql = match crate::compat::may_translate(&query.query) {
                true => {
                    let statements = sql::split_statements(&query.query);
                    let altered = crate::compat::altered_tables(statements.iter().copied());
                    let schemas = self.table_schemas(client, altered).await;
                    crate::compat::translate_batch(statements, &schemas)
                        .unwrap_or_else(|| query.query.clone())
                }
                false => query.query,
            };
            let request = Request::Execute {
                sql,
                params: Vec::new(),
                mode: ExecuteMode::Batch,
                column_types: None,
            };
            match self.run(client, request).await {
                Ok(Response {
                    outcome: Outcome::Executed(results),
                    txn,
                }) => {
                    let tagged = super::sqlite_api::negotiated(client);
                    for result in results {
                        match result {
                            Ok(r) => send_result(client, r, tagged).await?,
                            Err(e) => client.feed(error_response(e)).await?,
                        }
                    }
                    pg_status(txn)
                }
                Ok(Response {
                    outcome: Outcome::Prepared(_),
                    txn,
                }) => pg_status(txn),
                Err(e) => {
                    client.feed(error_response(e)).await?;
                    client.transaction_status().to_error_state()
                }
            }
        };
        ready(client, status).await
    }

    async fn do_query<C>(&self, _client: &mut C, _query: &str) -> PgWireResult<Vec<PgResponse>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        unreachable!("on_query is overridden and never calls do_query")
    }
}

/// Parses statements for the extended protocol by preparing them on the
/// session's connection.
pub struct Parser {
    handler: Arc<SqlHandler>,
}

impl Parser {
    pub fn new(handler: Arc<SqlHandler>) -> Self {
        Parser { handler }
    }
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Arc<PreparedStatement>;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        // COPY is run by `copy` at Execute, never prepared by SQLite.
        if super::copy::is_copy(sql) {
            return Ok(Some(Arc::new(PreparedStatement {
                sql: sql.to_owned(),
                param_types: Vec::new(),
                columns: Vec::new(),
            })));
        }
        let response = self
            .handler
            .run(
                client,
                Request::Prepare {
                    sql: sql.to_owned(),
                },
            )
            .await?;
        let mut prepared = match response.outcome {
            Outcome::Prepared(p) => (*p).clone(),
            Outcome::Executed(mut results) => {
                return Err(match results.pop() {
                    Some(Err(e)) => e.into(),
                    _ => PgWireError::ApiError("prepare returned no statement".into()),
                })
            }
        };
        // Types the client named win over inferred ones.
        for (i, ty) in types.iter().enumerate() {
            if let Some(ty) = ty.as_ref().filter(|t| **t != Type::UNKNOWN) {
                if i < prepared.param_types.len() {
                    prepared.param_types[i] = ty.clone();
                }
            }
        }
        Ok(Some(Arc::new(prepared)))
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        Ok(stmt.param_types.clone())
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(field_infos(
            &stmt.columns,
            format.unwrap_or(&Format::UnifiedText),
        ))
    }
}

/// The extended-protocol half of the handler.
pub struct ExtendedHandler {
    handler: Arc<SqlHandler>,
    parser: Arc<Parser>,
}

impl ExtendedHandler {
    pub fn new(handler: Arc<SqlHandler>) -> Self {
        ExtendedHandler {
            parser: Arc::new(Parser::new(handler.clone())),
            handler,
        }
    }
}

fn decode_params(portal: &Portal<Arc<PreparedStatement>>) -> Result<Vec<Value>, SqlError> {
    let types = &portal.statement.statement.param_types;
    portal
        .parameters
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let ty = types.get(i).cloned().unwrap_or(Type::TEXT);
            types::decode_param(bytes.as_deref(), &ty, portal.parameter_format.is_binary(i))
        })
        .collect()
}

/// How an Execute of a portal ended.
enum Sent {
    /// `max_rows` were sent and more remain.
    Suspended,
    /// Every row was sent: the CommandComplete tag.
    Complete(String),
}

/// Sends up to `max_rows` (0: all) of a started portal's rows, each
/// straight from the portal's stream to the client. The client's limit
/// bounds a loop, never an allocation.
async fn send_portal_rows<C>(
    client: &mut C,
    portal: &Portal<Arc<PreparedStatement>>,
    max_rows: usize,
) -> PgWireResult<Sent>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let state = portal.state();
    let mut state = state.lock().await;
    let PortalExecutionState::Suspended(response) = &mut *state else {
        // Executed to the end already: nothing more to send.
        let sql = &portal.statement.statement.sql;
        return Ok(Sent::Complete(
            sql::Statement::classify(sql).tag(0, 0, true),
        ));
    };
    let mut count = 0usize;
    while max_rows == 0 || count < max_rows {
        match response.data_rows().next().await {
            Some(Ok(row)) => {
                client.feed(PgWireBackendMessage::DataRow(row)).await?;
                count += 1;
            }
            Some(Err(e)) => {
                *state = PortalExecutionState::Finished;
                return Err(e);
            }
            None => {
                let tag = format!("{} {count}", response.command_tag());
                *state = PortalExecutionState::Finished;
                return Ok(Sent::Complete(tag));
            }
        }
    }
    Ok(Sent::Suspended)
}

#[async_trait]
impl ExtendedQueryHandler for ExtendedHandler {
    type Statement = Arc<PreparedStatement>;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    /// pgwire's Parse, with the connection's statements bounded.
    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.clone().unwrap_or_default();
        PreparedNames::of(client).admit(&name, message.query.len())?;
        let stored = StoredStatement::parse(client, &message, self.query_parser()).await?;
        match stored {
            Some(stmt) => client.portal_store().put_statement(Arc::new(stmt)),
            None => client.portal_store().put_empty_statement(&name),
        }
        client
            .send(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
            .await?;
        Ok(())
    }

    /// pgwire's Describe, except that a statement with parameters and no
    /// result columns is described as ParameterDescription then NoData, as
    /// Postgres does (pgwire sends an empty RowDescription, and pgjdbc then
    /// takes every execution of such a statement for one that returned
    /// rows: "A result was returned when none was expected").
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let (parameters, fields) = match message.target_type {
            TARGET_TYPE_BYTE_STATEMENT => match client.portal_store().get_statement(name) {
                Some(Entry::Value(stmt)) => (
                    Some(stmt.statement.param_types.clone()),
                    field_infos(&stmt.statement.columns, &Format::UnifiedText),
                ),
                Some(Entry::Empty) => (Some(Vec::new()), Vec::new()),
                None => return Err(PgWireError::StatementNotFound(name.to_owned())),
            },
            TARGET_TYPE_BYTE_PORTAL => match client.portal_store().get_portal(name) {
                Some(Entry::Value(portal)) => (
                    None,
                    field_infos(
                        &portal.statement.statement.columns,
                        &portal.result_column_format,
                    ),
                ),
                Some(Entry::Empty) => (None, Vec::new()),
                // A cursor DECLAREd in SQL is a portal too (psycopg describes
                // its named cursors so): it returns what its FETCH does.
                None => {
                    let fetch = format!("FETCH NEXT FROM \"{}\"", name.replace('"', "\"\""));
                    let described = self.parser.parse_sql(client, &fetch, &[]).await?;
                    let columns = described.map(|d| d.columns.clone()).unwrap_or_default();
                    (None, field_infos(&columns, &Format::UnifiedText))
                }
            },
            other => return Err(PgWireError::InvalidTargetType(other)),
        };
        if let Some(types) = parameters {
            let oids = types.iter().map(|t| t.oid()).collect();
            client
                .feed(PgWireBackendMessage::ParameterDescription(
                    ParameterDescription::new(oids),
                ))
                .await?;
        }
        let described = match fields.is_empty() {
            true => PgWireBackendMessage::NoData(NoData::new()),
            false => row_description(&fields),
        };
        client.send(described).await?;
        Ok(())
    }

    /// pgwire's Close, forgetting a closed statement's place in the bound.
    async fn on_close<C>(&self, client: &mut C, message: Close) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        match message.target_type {
            TARGET_TYPE_BYTE_STATEMENT => {
                client.portal_store().rm_statement(name);
                PreparedNames::of(client).forget(name);
            }
            TARGET_TYPE_BYTE_PORTAL => client.portal_store().rm_portal(name),
            _ => {}
        }
        client
            .send(PgWireBackendMessage::CloseComplete(CloseComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        let portal_name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let max_rows = message.max_rows.max(0) as usize;
        let portal = match client.portal_store().get_portal(portal_name) {
            Some(Entry::Value(portal)) => portal,
            Some(Entry::Empty) => {
                client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await?;
                return Ok(());
            }
            None => return Err(PgWireError::PortalNotFound(portal_name.to_owned())),
        };
        let sql = &portal.statement.statement.sql;
        if super::copy::is_copy(sql) {
            return super::copy::start(self.handler.as_ref(), client, sql, true).await;
        }
        super::copy::settle(self.handler.as_ref(), client).await;
        client.set_state(PgWireConnectionState::QueryInProgress);
        let started = !matches!(*portal.state().lock().await, PortalExecutionState::Initial);
        if !started {
            let statement = &portal.statement.statement;
            let params = decode_params(&portal)?;
            let request = Request::Execute {
                sql: statement.sql.clone(),
                params,
                mode: ExecuteMode::Single,
                column_types: Some(statement.columns.iter().map(|c| c.ty.clone()).collect()),
            };
            let response = self.handler.run(client, request).await;
            let response =
                response.inspect_err(|_| client.set_state(PgWireConnectionState::ReadyForQuery))?;
            let Outcome::Executed(mut results) = response.outcome else {
                return Err(PgWireError::ApiError("execute returned no result".into()));
            };
            let result = results
                .pop()
                .unwrap_or_else(|| Ok(StatementResult::no_rows("")));
            client.set_transaction_status(pg_status(response.txn));
            let result =
                result.inspect_err(|_| client.set_state(PgWireConnectionState::ReadyForQuery))?;
            let Some(columns) = result.columns.clone() else {
                client.set_state(PgWireConnectionState::ReadyForQuery);
                client
                    .send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                        result.tag,
                    )))
                    .await?;
                return Ok(());
            };
            let tagged = super::sqlite_api::negotiated(client);
            let fields = Arc::new(field_infos(&columns, &portal.result_column_format));
            let tag = tag_prefix(&result.tag).to_owned();
            let rows = row_stream(result, portal.result_column_format.clone(), tagged);
            let mut response = QueryResponse::new(fields, rows);
            response.set_command_tag(&tag);
            portal.start(response).await;
        }
        let sent = send_portal_rows(client, &portal, max_rows).await;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        let message = match sent? {
            Sent::Suspended => PgWireBackendMessage::PortalSuspended(PortalSuspended::new()),
            Sent::Complete(tag) => PgWireBackendMessage::CommandComplete(CommandComplete::new(tag)),
        };
        client.send(message).await?;
        Ok(())
    }

    async fn do_query<C>(
        &self,
        _client: &mut C,
        _portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<PgResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        unreachable!("on_execute is overridden and never calls do_query")
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        _stmt: &StoredStatement<Self::Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        unreachable!("on_describe is overridden and never calls do_describe_statement")
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        _portal: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        unreachable!("on_describe is overridden and never calls do_describe_portal")
    }
}
