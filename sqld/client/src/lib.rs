//! `libsqlite3.so` for sqld: the SQLite C API, with every call carried to a
//! sqld server over the Postgres wire protocol. An unmodified SQLite
//! program (Python's `sqlite3` module, the `sqlite3` shell, a C program)
//! finds this library first through `LD_LIBRARY_PATH` and uses the server.
//!
//! # Where the database is
//! `SQLD_URL`, when set, receives every open whatever the filename;
//! otherwise the filename must be a URL (`postgres://`, `postgresql://`,
//! `sqld://host:port/db?user=..&password=..&sslmode=disable|require`).
//! Anything else fails `sqlite3_open_v2` with `SQLITE_CANTOPEN`: there is
//! no local engine here (`target`).
//!
//! # Design
//! Synchronous, no async runtime: a C library is called on its callers'
//! threads, and each call is one blocking exchange. A connection is a
//! `TcpStream` (rustls for `sslmode=require`) speaking the protocol through
//! the `postgres-protocol` crate (`wire`), behind a mutex: threads sharing
//! a connection are serialized, as SQLite's serialized mode promises
//! (`db`). Each exchange is pipelined into one write ending in Sync:
//! `sqlite3_prepare` is one round trip (Parse + Describe: errors and
//! columns before the first step); the first `sqlite3_step` is one (Bind +
//! Describe + Execute) and prefetches every row, so later steps cost none;
//! finalized statements are closed with the next exchange (`stmt`).
//!
//! # Fidelity: the SQLite API dialect
//! At startup the library sends the parameter `sqld.sqlite_api=on`. Under
//! it sqld sends each result value as a storage-class tag plus the value
//! as SQLite holds it (8-byte integer, 8-byte float, text, blob), so
//! `sqlite3_column_type` is each value's own class even in a mixed column
//! and integers keep 64 bits; a failed statement leaves the transaction
//! open (SQLite's rule, not Postgres'); and an INSERT's command tag carries
//! the last rowid, so `sqlite3_last_insert_rowid` and `sqlite3_changes`
//! cost no round trip. Ordinary Postgres clients never send the parameter
//! and see nothing different. Bound values travel in binary with their
//! own type (int8, float8, text, bytea), so parameters keep their class
//! too. `sqlite3_get_autocommit` is ReadyForQuery's status (`I` or not).
//! Server errors come back as SQLSTATEs and become SQLite extended codes
//! in one table (`codes::for_sqlstate`).
//!
//! # What is approximate
//! - `sqlite3_column_decltype` is the SQLite spelling of the type sqld
//!   chose for the column (its declared type when it has one); for an
//!   expression column SQLite would return NULL, this returns the type of
//!   its values. `sqlite3_column_table_name`/`origin_name` are NULL.
//! - `sqlite3_busy_timeout` sets `PRAGMA busy_timeout` on the server's
//!   session; `sqlite3_interrupt` sends a Postgres CancelRequest.
//! - `sqlite3_txn_state` reports WRITE for any open transaction.
//!
//! # Accepted, changing nothing (documented no-ops)
//! `sqlite3_initialize`, `sqlite3_shutdown`, `sqlite3_config`,
//! `sqlite3_db_config`, `sqlite3_enable_shared_cache`,
//! `sqlite3_extended_result_codes` (codes are always extended),
//! `sqlite3_limit` (reports SQLite's defaults, sets nothing: limits are
//! the server's), `sqlite3_enable_load_extension(db, 0)`,
//! `sqlite3_set_authorizer(db, NULL, ..)`, `sqlite3_progress_handler(db,
//! .., NULL, ..)`, `sqlite3_trace_v2(db, 0, ..)`. They configure an engine
//! that is not in this process.
//!
//! # Not supported (error code and message, never a crash)
//! Application-defined functions, collations and virtual tables, loading
//! extensions, the backup API, incremental blob I/O, sessions,
//! serialize/deserialize, `sqlite3_table_column_metadata`,
//! `sqlite3_file_control`, status counters: see `api::unsupported`.

mod api;
mod codes;
mod db;
mod scan;
mod stmt;
mod target;
mod value;
mod wire;
