//! What this process is in its cluster, as one value: the primary, which
//! owns the replication log and runs the writes replicas forward, or a
//! replica, which follows a primary through its link and forwards writes
//! to it. `Role::start` builds it in one place from the configuration;
//! everything that depends on the role asks the `CurrentRole` handle, the
//! one seam through which promotion and demotion will change it while the
//! process runs.

use std::sync::{Arc, RwLock};

use crate::database::Database;
use crate::replication::follower::{Follower, FollowerError};
use crate::replication::link::ReplicaLink;
use crate::replication::log::ReplicationLog;
use crate::replication::remote::{RemoteSessionBounds, RemoteSessions};
use crate::replication::status::ReplicaStatus;
use crate::scheduler::{SessionConfig, Upstream};
use crate::shutdown::Shutdown;

pub enum Role {
    Primary(Primary),
    Replica(Replica),
}

pub struct Primary {
    pub log: Arc<ReplicationLog>,
    /// Sessions running replicas' forwarded transactions.
    pub remote_sessions: Arc<RemoteSessions>,
}

pub struct Replica {
    /// The primary it follows.
    pub primary_url: String,
    /// How far the replica has applied what the primary committed.
    pub status: Arc<ReplicaStatus>,
    /// Where the replica's sessions forward writes.
    pub link: Arc<ReplicaLink>,
    /// Not ready while further behind the primary than this.
    pub max_lag_frames: u64,
    /// The follower, running until shutdown; awaited before the directory
    /// changes role, so no batch is being applied then.
    pub follower: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A change of role asked for through the admin API. It is made between two
/// runs of the server on the same directory (`sqld::run`): sessions are
/// closed, the directory changes role, and the server starts again in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleChange {
    /// This replica becomes the primary, in a new epoch.
    Promote,
    /// This server (a replica, or a primary that was replaced) follows the
    /// primary at this URL.
    Follow(String),
}

/// What a replica needs to reach its primary.
pub struct Following<'a> {
    pub primary_url: &'a str,
    pub http: reqwest::Client,
    pub token: Option<String>,
    pub db_dir: &'a std::path::Path,
    pub max_lag_frames: u64,
    /// Where a first bootstrap restores from (`--bootstrap-from-backup`).
    pub seed_store: Option<crate::backup::store::BackupStore>,
}

impl Role {
    /// The primary's role on its open database: its log, and sessions for
    /// forwarded writes (reaped in the background until shutdown).
    pub fn primary(
        db: &Database,
        sessions: SessionConfig,
        bounds: RemoteSessionBounds,
        shutdown: Shutdown,
    ) -> Option<Role> {
        let log = db.log()?.clone();
        let remote_sessions = Arc::new(RemoteSessions::new(db.clone(), sessions, bounds));
        tokio::spawn(remote_sessions.clone().reap(shutdown));
        Some(Role::Primary(Primary {
            log,
            remote_sessions,
        }))
    }

    /// A replica's role: its link to the primary, and the follower that
    /// applies the primary's frames (running in the background until
    /// shutdown).
    pub fn replica(
        db: &Database,
        following: Following<'_>,
        shutdown: Shutdown,
    ) -> Result<Role, FollowerError> {
        let status = Arc::new(ReplicaStatus::default());
        let link = Arc::new(ReplicaLink::new(
            following.http.clone(),
            following.primary_url,
            following.token.clone(),
            status.clone(),
            tokio::runtime::Handle::current(),
            db.metrics().clone(),
        ));
        let follower = Follower::new(
            following.http,
            following.primary_url,
            following.token,
            db.clone(),
            following.db_dir,
            following.seed_store,
            status.clone(),
        )?;
        let follower = tokio::spawn(follower.run(shutdown));
        Ok(Role::Replica(Replica {
            primary_url: following.primary_url.to_owned(),
            status,
            link,
            max_lag_frames: following.max_lag_frames,
            follower: std::sync::Mutex::new(Some(follower)),
        }))
    }

    /// The epoch of the log this process writes or follows.
    pub fn epoch(&self) -> u64 {
        match self {
            Role::Primary(primary) => primary.log.epoch(),
            Role::Replica(replica) => replica
                .status
                .epoch
                .load(std::sync::atomic::Ordering::SeqCst),
        }
    }

    /// Waits until the follower stopped (after shutdown), if there is one.
    pub async fn stopped(&self) {
        if let Role::Replica(replica) = self {
            let follower = replica
                .follower
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(follower) = follower {
                let _ = follower.await;
            }
        }
    }

    /// Where sessions send what they cannot run themselves: the primary,
    /// on a replica; nowhere, on the primary.
    pub fn upstream(&self) -> Option<Arc<dyn Upstream>> {
        match self {
            Role::Primary(_) => None,
            Role::Replica(replica) => Some(replica.link.clone()),
        }
    }
}

/// The process's role now, shared by everything that depends on it.
#[derive(Clone)]
pub struct CurrentRole(Arc<RwLock<Arc<Role>>>);

impl CurrentRole {
    pub fn new(role: Role) -> Self {
        CurrentRole(Arc::new(RwLock::new(Arc::new(role))))
    }

    pub fn get(&self) -> Arc<Role> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Makes this process `role` (promotion, demotion), returning what it
    /// was. Sessions already open keep the upstream they started with.
    pub fn set(&self, role: Role) -> Arc<Role> {
        let mut current = self.0.write().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *current, Arc::new(role))
    }
}
