//! Replication: the primary logs every committed WAL frame (`capture`,
//! `log`), folds the log into snapshots (`snapshot`) and serves both over
//! HTTP (`api`, guarded by `token`), where it also runs the writes replicas
//! forward (`remote`). A replica's `follower` fetches and applies frames
//! (`inject`) and records its progress (`status`); its sessions forward
//! writes through the `link`, reaching the primary with one client
//! (`primary_client`). Both sides speak `wire`.
//!
//! Why a WAL wrapper: libsql lets a connection wrap its WAL methods, so the
//! primary sees each transaction's pages exactly when SQLite commits them,
//! in commit order, under SQLite's own write lock. Reading the WAL file
//! afterwards (libsql_wal_get_frame) would race with checkpoints that
//! restart the WAL; hooking the write path cannot miss or reorder a commit.

pub mod admin;
pub mod api;
pub mod capture;
pub mod epoch;
pub mod follower;
pub mod frame;
pub mod inject;
pub mod link;
pub mod log;
pub mod primary_client;
pub mod promote;
pub mod remote;
pub mod retained;
pub mod snapshot;
pub mod status;
pub mod sync;
pub mod token;
pub mod wire;
