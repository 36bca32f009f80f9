//! Replication: the primary logs every committed WAL frame (`capture`,
//! `log`), folds the log into snapshots (`snapshot`) and serves both over
//! HTTP (`api`).
//!
//! Why a WAL wrapper: libsql lets a connection wrap its WAL methods, so the
//! primary sees each transaction's pages exactly when SQLite commits them,
//! in commit order, under SQLite's own write lock. Reading the WAL file
//! afterwards (libsql_wal_get_frame) would race with checkpoints that
//! restart the WAL; hooking the write path cannot miss or reorder a commit.

pub mod api;
pub mod capture;
pub mod forward;
pub mod frame;
pub mod inject;
pub mod log;
pub mod primary_client;
pub mod replica;
pub mod snapshot;
pub mod token;
