//! Replies every query path sends alike: an ErrorResponse for a
//! `SqlError`, the status ReadyForQuery reports for a session's
//! transaction state, and ReadyForQuery itself.

use futures::{Sink, SinkExt};
use pgwire::api::{ClientInfo, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::response::{ReadyForQuery, TransactionStatus};
use pgwire::messages::PgWireBackendMessage;

use crate::error::SqlError;
use crate::query::TxnState;

pub fn pg_status(txn: TxnState) -> TransactionStatus {
    match txn {
        TxnState::Idle => TransactionStatus::Idle,
        TxnState::Active => TransactionStatus::Transaction,
        TxnState::Failed => TransactionStatus::Error,
    }
}

pub fn error_response(e: SqlError) -> PgWireBackendMessage {
    let info: ErrorInfo = PgWireError::from(e).into();
    PgWireBackendMessage::ErrorResponse(info.into())
}

/// Ends a query: the connection is ready again, in `status`.
pub async fn ready<C>(client: &mut C, status: TransactionStatus) -> PgWireResult<()>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    client.set_state(PgWireConnectionState::ReadyForQuery);
    client.set_transaction_status(status);
    client
        .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
            status,
        )))
        .await?;
    Ok(())
}
