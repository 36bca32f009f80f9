//! The SQLite API dialect: a sqld-specific startup parameter that the
//! `libsqlite3` client library (`sqld/client`) sends, and that changes what
//! this connection sees so the SQLite C API can be honoured exactly:
//!
//! - every result value is sent as a storage-class tag and the value as
//!   SQLite holds it (`types::encode_tagged_field`), whatever format the
//!   client asked for, so a mixed column keeps each value's own type and
//!   integers keep all 64 bits;
//! - a failed statement leaves an open transaction open (SQLite's rule)
//!   instead of aborting it (Postgres' rule);
//! - `INSERT` command tags carry the last inserted rowid in their oid slot.
//!
//! The parameter name has a dot, so a real PostgreSQL server accepts it as
//! a custom placeholder setting. Clients that do not send it see ordinary
//! Postgres behaviour, unchanged.

use pgwire::api::ClientInfo;

/// The startup parameter, and the value that turns the dialect on.
pub const STARTUP_PARAMETER: &str = "sqld.sqlite_api";
const ON: &str = "on";

/// Whether the client asked for the SQLite API dialect at startup.
pub fn negotiated<C: ClientInfo + ?Sized>(client: &C) -> bool {
    client
        .metadata()
        .get(STARTUP_PARAMETER)
        .is_some_and(|v| v.eq_ignore_ascii_case(ON))
}
