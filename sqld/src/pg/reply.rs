//! Replies every query path sends alike: an ErrorResponse for a
//! `SqlError`, and the status ReadyForQuery reports for a session's
//! transaction state.

use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::response::TransactionStatus;
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
