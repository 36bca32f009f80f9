//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several
//! operator replicas exactly one reconciles. The semantics are client-go's:
//!
//! - Expiry is judged by the candidate's own clock: a candidate notes when
//!   it last saw the lease record change, and takes the lease over only once
//!   it has seen no change for the lease's duration. The holder's
//!   `renewTime` is never compared with another machine's clock, so clock
//!   skew between nodes cannot make a live lease look expired.
//! - The holder renews every `retry_period`, each attempt bounded in time,
//!   and gives leadership up once it has not renewed for `renew_deadline`,
//!   which is shorter than `lease_duration`: the old leader stops before any
//!   standby may take over, even when a request hangs.
//! - Writes carry the lease's resourceVersion, so two candidates racing for
//!   it cannot both win.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::time::Instant;

use crate::error::{Error, Result};

/// Lease timing, as Kubernetes' own controllers use it (client-go's
/// defaults): 15 s lease, give up after 10 s without a renewal, try every 2 s.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// How long a lease lasts, how long its holder keeps trying to renew it,
/// and how often candidates try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_duration: LEASE_DURATION,
            renew_deadline: RENEW_DEADLINE,
            retry_period: RETRY_PERIOD,
        }
    }
}

impl Timing {
    /// client-go's constraints: the holder must give up before a standby
    /// may take over, and must get more than one attempt before that.
    pub fn is_safe(&self) -> bool {
        self.renew_deadline < self.lease_duration && self.retry_period < self.renew_deadline
    }
}

/// The lease record as last seen, and when (on this process's clock).
struct Observation {
    record: LeaseSpec,
    at: Instant,
}

/// One candidate for the lease.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    observed: Mutex<Option<Observation>>,
}

impl LeaderElector {
    /// A candidate `identity` for the lease `namespace/name`, with the
    /// default timing.
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Self {
        Self::with_timing(client, namespace, name, identity, Timing::default())
            .unwrap_or_else(|_| unreachable!("the default timing is safe"))
    }

    /// A candidate with its own timing; refused unless `timing.is_safe()`.
    pub fn with_timing(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: Timing,
    ) -> Result<Self> {
        if !timing.is_safe() {
            return Err(Error::Leadership(format!(
                "unsafe lease timing {timing:?}: need retry period < renew deadline < lease duration"
            )));
        }
        Ok(LeaderElector {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            timing,
            observed: Mutex::new(None),
        })
    }

    /// One attempt to take or renew the lease, bounded by `timeout`;
    /// `Ok(true)` while we hold it.
    pub async fn try_acquire_or_renew_within(&self, timeout: Duration) -> Result<bool> {
        match tokio::time::timeout(timeout, self.try_acquire_or_renew()).await {
            Ok(r) => r,
            Err(_) => Err(Error::Leadership(format!(
                "a lease request took longer than {timeout:?}"
            ))),
        }
    }

    /// One attempt to take or renew the lease; `Ok(true)` while we hold it.
    pub async fn try_acquire_or_renew(&self) -> Result<bool> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let spec = self.spec(now, 0);
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec.clone()),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.observe(spec, true);
                    Ok(true)
                }
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(e.into()),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let unchanged_for = self.observe(spec.clone(), false);
        let held_by_us = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let next = if held_by_us {
            let mut renewed = spec.clone();
            renewed.renew_time = Some(MicroTime(now));
            renewed.lease_duration_seconds = Some(secs(self.timing.lease_duration));
            renewed
        } else if is_free(&spec) || unchanged_for >= lease_duration(&spec) {
            self.spec(now, spec.lease_transitions.unwrap_or(0) + 1)
        } else {
            return Ok(false);
        };
        lease.spec = Some(next.clone());
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                self.observe(next, true);
                Ok(true)
            }
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Records the lease as seen now; returns for how long it has been
    /// seen unchanged (zero when it just changed or `written` by us).
    fn observe(&self, record: LeaseSpec, written: bool) -> Duration {
        let now = Instant::now();
        let Ok(mut observed) = self.observed.lock() else {
            return Duration::ZERO;
        };
        match observed.as_ref() {
            Some(o) if !written && o.record == record => now.duration_since(o.at),
            _ => {
                *observed = Some(Observation { record, at: now });
                Duration::ZERO
            }
        }
    }

    /// Waits until this candidate holds the lease.
    pub async fn acquire(&self) -> Result<()> {
        loop {
            match self
                .try_acquire_or_renew_within(self.timing.renew_deadline)
                .await
            {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election attempt failed"),
            }
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// Renews the lease every retry period; returns why leadership ended:
    /// another holder, or no successful renewal within the renew deadline
    /// (each attempt is cut off at that deadline, so a hung request cannot
    /// keep a leader that a standby already replaced).
    pub async fn hold(&self) -> Error {
        let mut last_renewal = Instant::now();
        loop {
            tokio::time::sleep(self.timing.retry_period).await;
            let deadline = last_renewal + self.timing.renew_deadline;
            let left = deadline.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                match self.try_acquire_or_renew_within(left).await {
                    Ok(true) => {
                        last_renewal = Instant::now();
                        continue;
                    }
                    Ok(false) => {
                        return Error::Leadership("lease taken by another instance".into())
                    }
                    Err(e) => tracing::warn!(error = %e, "renewing the leader lease failed"),
                }
            }
            if Instant::now() >= deadline {
                return Error::Leadership("could not renew the lease in time".into());
            }
        }
    }

    /// Gives the lease up on shutdown so a standby takes over at once.
    pub async fn release(&self) {
        let attempt = async {
            if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if spec.holder_identity.as_deref() == Some(self.identity.as_str()) {
                    spec.holder_identity = None;
                    spec.lease_duration_seconds = Some(1);
                    let _ = self
                        .api
                        .replace(&self.name, &PostParams::default(), &lease)
                        .await;
                }
            }
        };
        // Shutdown must not hang on an unreachable API server.
        let _ = tokio::time::timeout(self.timing.renew_deadline, attempt).await;
    }

    fn spec(&self, now: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(secs(self.timing.lease_duration)),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }
}

/// A lease nobody holds (never held, or released).
pub fn is_free(spec: &LeaseSpec) -> bool {
    spec.holder_identity.as_deref().unwrap_or("").is_empty()
}

/// The duration the holder asked for.
fn lease_duration(spec: &LeaseSpec) -> Duration {
    Duration::from_secs(u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0))
}

/// Whole seconds, as the Lease stores them (at least 1).
fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}
