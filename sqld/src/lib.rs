//! sqld: a server for the SQLite dialect that speaks the PostgreSQL wire
//! protocol, running SQL on libsql.
//!
//! The path of a client's statement, module by module:
//! `server` accepts the socket -> `pg` drives the protocol (`pg::io` frames
//! bytes, `pg::auth` authenticates, `pg::handler` turns messages into a
//! `scheduler::Query`) -> `service` applies layers (metrics, statement timeout)
//! -> `scheduler` runs it on the session's libsql connection (`database`
//! opens it, sandboxed) -> results map back through `types` (values) and
//! `error` (SQLSTATEs).

pub mod activity;
pub mod backup;
pub mod compat;
pub mod config;
pub mod control;
pub mod database;
pub mod dev_cluster;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod memory;
pub mod metrics;
pub mod pg;
pub mod query;
pub mod replication;
pub mod role;
pub mod scheduler;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod sql;
pub mod tls;
pub mod types;
pub mod typing;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::{nonzero, AuthMethod, Config};
use crate::database::{Checkpointer, Database};
use crate::pg::{FactoryConfig, PgConnectionFactory, ProtocolLimits, Users};
use crate::replication::remote::RemoteSessionBounds;
use crate::role::{CurrentRole, Following, Role, RoleChange};
use crate::scheduler::SessionConfig;

/// Runs the server until SIGTERM or SIGINT, then shuts down gracefully. A
/// role change asked for through the admin API (`role::RoleChange`) ends
/// one run and starts the next in the new role, on the same directory and
/// listeners' addresses.
pub async fn run(mut config: Config) -> anyhow::Result<()> {
    // The primary a promoted replica replaced: it is told to fence itself.
    let mut replaced: Option<(String, u64)> = None;
    loop {
        match serve(&config, replaced.take()).await? {
            Ended::Stopped => return Ok(()),
            Ended::Changing(RoleChange::Promote) => {
                let dir = config.db_path.clone();
                let epoch =
                    tokio::task::spawn_blocking(move || replication::promote::promote(&dir))
                        .await??;
                replaced = config.primary_url.take().map(|url| (url, epoch));
            }
            Ended::Changing(RoleChange::Follow(url)) => {
                tracing::info!(primary = %url, "following another primary");
                config.primary_url = Some(url);
            }
        }
    }
}

/// How one run of the server ended.
enum Ended {
    /// SIGTERM or SIGINT: the process exits.
    Stopped,
    /// A role change: the next run serves in the new role.
    Changing(RoleChange),
}

/// One run of the server in one role. `replaced`: the URL of the primary
/// this one was promoted over, and the new epoch, to fence it with.
async fn serve(config: &Config, replaced: Option<(String, u64)>) -> anyhow::Result<Ended> {
    if config.primary_url.is_some() {
        replication::promote::rejoin_as_replica(&config.db_path)?;
    }
    let db = match &config.primary_url {
        None => Database::open_primary(&config.db_path, config.busy_timeout)?,
        Some(_) => Database::open_replica(&config.db_path, config.busy_timeout)?,
    };
    let users = Arc::new(load_users(config)?);
    let auth = config.auth_method();
    if auth != AuthMethod::Trust && users.is_empty() {
        return Err(pg::UsersError::NoUsers.into());
    }
    let token = replication::token::resolve(&replication::token::TokenSource {
        token: config.replication_token.as_deref(),
        file: config.replication_token_file.as_deref(),
        dev: config.dev,
        is_replica: config.primary_url.is_some(),
        db_path: &config.db_path,
        api_listen_addr: config
            .internal_listen_addr
            .unwrap_or(config.http_listen_addr),
    })?;
    let sent_token = token.as_ref().map(|t| t.secret().to_owned());
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };

    let pg_listener = TcpListener::bind(config.pg_listen_addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.pg_listen_addr))?;
    let http_listener = TcpListener::bind(config.http_listen_addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.http_listen_addr))?;
    let internal_listener = match config.internal_listen_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?,
        ),
        None => None,
    };
    let internal_tls = match (&config.tls_cert, &config.tls_key, &internal_listener) {
        (Some(cert), Some(key), Some(_)) => Some(tls::http_acceptor(cert, key)?),
        _ => None,
    };
    // One client for everything a replica asks its primary.
    let primary_http = config
        .primary_url
        .as_deref()
        .map(|url| replication::primary_client::build(url, config.primary_ca_file.as_deref()))
        .transpose()?;
    tracing::info!(
        pg = %pg_listener.local_addr()?,
        http = %http_listener.local_addr()?,
        db = %config.db_path.display(),
        ?auth,
        tls = tls.is_some(),
        "sqld is ready"
    );

    let (trigger, shutdown) = shutdown::channel();
    let ready = Arc::new(AtomicBool::new(true));
    let mut session_config = SessionConfig {
        max_result_bytes: config.max_result_size,
        statement_timeout: nonzero(config.statement_timeout),
        write_transaction_timeout: nonzero(config.write_transaction_timeout),
        upstream: None,
        sqlite_api: false,
        shutdown: Some(shutdown.clone()),
        activity: None,
    };
    let seed_store = match (&config.bootstrap_from_backup, &config.primary_url) {
        (Some(url), Some(_)) => Some(backup::store::BackupStore::open(url)?),
        (Some(_), None) => {
            tracing::warn!("--bootstrap-from-backup is ignored on a primary");
            None
        }
        (None, _) => None,
    };
    // The one place that decides what this process is.
    let role = match (&config.primary_url, primary_http) {
        (Some(url), Some(http)) => Role::replica(
            &db,
            Following {
                primary_url: url,
                http,
                token: sent_token,
                db_dir: &config.db_path,
                max_lag_frames: config.max_replica_lag_frames,
                seed_store,
            },
            shutdown.clone(),
        )?,
        _ => Role::primary(
            &db,
            session_config.clone(),
            RemoteSessionBounds::new(
                config.max_connections,
                nonzero(config.idle_in_transaction_timeout),
                nonzero(config.write_transaction_timeout),
            ),
            shutdown.clone(),
        )
        .context("a primary's database has a replication log")?,
    };
    if let Role::Primary(primary) = &role {
        primary.log.sync_replicas().require(
            config.synchronous_replicas,
            config.synchronous_commit_timeout,
        );
        primary.log.fence_after(config.fence_after);
    }
    session_config.upstream = role.upstream();
    let archiver = backup::start(config, &role, shutdown.clone())?;
    let role = CurrentRole::new(role);
    let (role_changes, mut asked) = tokio::sync::mpsc::channel(1);
    if let Some((url, epoch)) = replaced {
        let http = replication::primary_client::build(&url, config.primary_ca_file.as_deref())?;
        tokio::spawn(replication::admin::fence_replaced(
            http,
            url,
            token.as_ref().map(|t| t.secret().to_owned()),
            epoch,
            config.advertised_url(),
            shutdown.clone(),
        ));
    }
    let http_state = http::HttpState {
        db: db.clone(),
        ready: ready.clone(),
        replication_token: token,
        role: role.clone(),
        max_message_size: config.max_message_size,
        role_changes,
    };
    spawn_compaction(
        db.clone(),
        config.snapshot_threshold_frames,
        shutdown.clone(),
    );
    spawn_checkpointer(&db, shutdown.clone())?;
    spawn_memory_trim(shutdown.clone());
    // The internal API goes on its own listener when there is one, else
    // beside /health and /metrics.
    let internal_api = http::internal_router(&http_state);
    let (public, internal) = match internal_listener {
        Some(listener) => (http::router(http_state), Some((listener, internal_api))),
        None => (http::router(http_state).merge(internal_api), None),
    };
    let http_task = tokio::spawn(http::serve(http_listener, public, None, shutdown.clone()));
    let internal_task = internal.map(|(listener, api)| {
        tokio::spawn(http::serve(listener, api, internal_tls, shutdown.clone()))
    });

    let admission_limits = pg::AdmissionLimits {
        max_connections: config.max_connections,
        max_authenticating: config.max_authenticating,
        max_authenticating_per_address: config.max_authenticating_per_address,
    };
    let factory = PgConnectionFactory::new(
        FactoryConfig {
            db: db.clone(),
            session_limits: session_config,
            auth,
            users,
            tls,
            limits: ProtocolLimits {
                max_message_size: config.max_message_size,
                startup_timeout: config.startup_timeout,
                client_write_timeout: nonzero(config.client_write_timeout),
                idle_in_transaction_timeout: nonzero(config.idle_in_transaction_timeout),
                admission: admission_limits,
            },
        },
        shutdown.clone(),
    );
    let server = server::Server::new(
        pg_listener,
        pg::admission::Admission::max_sockets(admission_limits),
        db.metrics().clone(),
    );
    let serving = tokio::spawn(server.serve(factory, shutdown, config.shutdown_grace_period));

    let ended = tokio::select! {
        _ = wait_for_signal() => Ended::Stopped,
        Some(change) = asked.recv() => Ended::Changing(change),
    };
    match &ended {
        Ended::Stopped => tracing::info!("shutting down"),
        Ended::Changing(change) => {
            tracing::info!(
                ?change,
                "changing role: closing sessions, then serving again"
            )
        }
    }
    ready.store(false, Ordering::SeqCst);
    trigger.trigger();
    let _ = serving.await;
    let _ = http_task.await;
    if let Some(task) = internal_task {
        let _ = task.await;
    }
    role.get().stopped().await;
    match db.checkpoint() {
        Ok(()) => tracing::info!("checkpointed the database; bye"),
        Err(e) => tracing::warn!(error = %e, "checkpoint at shutdown failed"),
    }
    if let Some(archiver) = archiver {
        let _ = tokio::time::timeout(backup::archiver::FINAL_UPLOAD_GRACE, archiver).await;
    }
    Ok(ended)
}

/// How often the primary checks whether its log needs compacting.
const COMPACTION_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds the replication log into snapshots in the background.
fn spawn_compaction(db: Database, threshold: u64, mut shutdown: shutdown::Shutdown) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(COMPACTION_CHECK_INTERVAL) => {}
                _ = shutdown.recv() => return,
            }
            let db = db.clone();
            match tokio::task::spawn_blocking(move || db.compact_if_needed(threshold)).await {
                Ok(Err(e)) => tracing::warn!(error = %e, "log compaction failed"),
                Err(e) => tracing::warn!(error = %e, "log compaction panicked"),
                Ok(Ok(_)) => {}
            }
        }
    });
}

/// How often the primary checks whether its WAL needs checkpointing: at
/// a few thousand commits a second, a few hundred frames.
const CHECKPOINT_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// Checkpoints the primary's WAL in the background (see `Checkpointer`).
fn spawn_checkpointer(db: &Database, mut shutdown: shutdown::Shutdown) -> anyhow::Result<()> {
    let Some(mut checkpointer) = Checkpointer::new(db)? else {
        return Ok(());
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.recv() => return,
            }
            if !checkpointer.due() {
                continue;
            }
            let run = tokio::task::spawn_blocking(move || {
                if let Err(e) = checkpointer.run() {
                    tracing::warn!(error = %e, "checkpoint failed");
                }
                checkpointer
            });
            match run.await {
                Ok(back) => checkpointer = back,
                Err(e) => {
                    tracing::error!(error = %e, "checkpointer panicked; sessions checkpoint from now on, past the backstop");
                    return;
                }
            }
        }
    });
    Ok(())
}

/// How often memory freed by closed sessions is handed back to the system.
const MEMORY_TRIM_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Hands memory that sessions freed back to the system. glibc keeps freed
/// memory in per-thread arenas; with a thread per connection, a burst of
/// connections would otherwise leave the server's RSS at its peak.
fn spawn_memory_trim(mut shutdown: shutdown::Shutdown) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(MEMORY_TRIM_INTERVAL) => {}
                _ = shutdown.recv() => return,
            }
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: malloc_trim only releases free memory; it is
            // thread-safe and touches nothing in use.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    });
}

fn load_users(config: &Config) -> anyhow::Result<Users> {
    let mut users = match &config.users_file {
        Some(path) => Users::from_file(path)?,
        None => Users::default(),
    };
    if let Some(password) = &config.password {
        users.add(&config.user, password);
    }
    Ok(users)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
