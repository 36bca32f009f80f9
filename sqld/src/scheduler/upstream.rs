//! What a replica's sessions need from the primary, as the scheduler sees
//! it: run a statement there, and know how far this replica has applied
//! the primary's log. The replication side implements it
//! (`replication::link`); the scheduler depends on this trait only, so
//! running a statement can be read without reading replication.

use std::time::Duration;

use libsql_sys::rusqlite::types::Value;
use pgwire::api::Type;

use crate::error::SqlError;
use crate::query::{StatementResult, TxnState};

/// One statement to run on the primary.
pub struct ForwardStatement<'a> {
    /// The primary's session of a transaction already running there.
    pub session: Option<&'a str>,
    /// Opens a transaction whose earlier reads (on the replica) saw this
    /// frame: the primary fails it with 40001 if anything committed since.
    pub begin_after_frame: Option<u64>,
    pub sql: &'a str,
    pub params: &'a [Value],
    /// Result column types the client was told at Describe time.
    pub column_types: Option<&'a [Type]>,
    pub sqlite_api: bool,
    /// What is left of the session's statement timeout.
    pub timeout: Option<Duration>,
    /// Whether the session's statement must stop (cancel, client gone,
    /// shutdown, timeout), polled while the primary's answer is awaited.
    pub stop: &'a dyn Fn() -> bool,
}

/// The primary's answer.
pub struct Forwarded {
    pub result: Result<StatementResult, SqlError>,
    /// Set while the transaction stays open on the primary.
    pub session: Option<String>,
    pub txn: TxnState,
    /// The primary's newest durable frame after the statement: once the
    /// replica has applied it, the session reads its own write.
    pub frame_no: u64,
}

pub trait Upstream: Send + Sync {
    /// Runs one statement on the primary; an error means it could not be
    /// reached (the statement's own errors are in `Forwarded::result`).
    fn forward(&self, statement: ForwardStatement<'_>) -> Result<Forwarded, SqlError>;

    /// The newest frame this replica has applied.
    fn applied(&self) -> u64;

    /// Blocks until `frame_no` is applied here, or fails clearly (40001).
    fn wait_for(&self, frame_no: u64) -> Result<(), SqlError>;

    /// How many times the replica's database was replaced by a snapshot:
    /// a connection opened before must reopen.
    fn generation(&self) -> u64;
}
