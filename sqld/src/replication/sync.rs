//! Synchronous replication (`--synchronous-replicas N`): a commit is
//! acknowledged to its client only once N replicas hold it durably. A
//! replica's next poll position is its acknowledgement, since it records a
//! batch (after an fsync) before it asks for what follows; so no extra
//! message is needed, and a commit waits about one poll round trip.
//!
//! With fewer than N replicas keeping up, commits wait up to the timeout,
//! then fail with a clear error (the commit is on the primary, unconfirmed),
//! as PostgreSQL's synchronous_commit does when its wait is canceled.
//!
//! The same acknowledgements, with when each replica last polled, are what
//! `pg_stat_replication` shows (`replicas`), synchronous or not.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// The frames each replica holds durably, and the newest one N of them do.
pub struct SyncReplicas {
    required: AtomicUsize,
    timeout_ms: AtomicU64,
    acks: Mutex<HashMap<String, Ack>>,
    /// Numbers replicas in the order they were first heard from.
    next_number: AtomicU64,
    /// The newest frame held by `required` replicas; woken on each advance.
    confirmed: Mutex<u64>,
    advanced: Condvar,
}

impl Default for SyncReplicas {
    fn default() -> Self {
        SyncReplicas {
            required: AtomicUsize::new(0),
            timeout_ms: AtomicU64::new(0),
            acks: Mutex::new(HashMap::new()),
            next_number: AtomicU64::new(1),
            confirmed: Mutex::new(0),
            advanced: Condvar::new(),
        }
    }
}

/// Replicas tracked at most: the ids come from the network.
const MAX_REPLICAS: usize = 10_000;
/// A replica silent this long may be forgotten to make room for another.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// What the primary knows of one replica.
#[derive(Debug, Clone, Copy)]
struct Ack {
    /// Every frame up to this one is durable on the replica.
    frame_no: u64,
    number: u64,
    last_poll: Instant,
    /// When it last held every durable frame of the primary.
    caught_up: Instant,
}

/// One replica's position, as `pg_stat_replication` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaPosition {
    pub id: String,
    /// Stable while this primary runs: the order replicas were first seen.
    pub number: u64,
    pub frame_no: u64,
    pub since_poll: Duration,
    /// How long it has been behind the primary (zero when it is not).
    pub lag: Duration,
}

/// Why a commit's wait for its replicas ended without them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unconfirmed {
    pub required: usize,
    pub holding: usize,
    pub waited: Duration,
}

impl SyncReplicas {
    /// From now on commits wait for `required` replicas, up to `timeout`.
    pub fn require(&self, required: usize, timeout: Duration) {
        self.required.store(required, Ordering::SeqCst);
        self.timeout_ms
            .store(timeout.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn required(&self) -> usize {
        self.required.load(Ordering::SeqCst)
    }

    /// Replica `id` holds every frame up to `frame_no` durably; the
    /// primary's newest durable frame is `durable`.
    pub fn acknowledge(&self, id: &str, frame_no: u64, durable: u64) {
        let required = self.required();
        let now = Instant::now();
        let newest = {
            let mut acks = self.acks.lock().unwrap_or_else(|p| p.into_inner());
            if !acks.contains_key(id) && acks.len() >= MAX_REPLICAS {
                acks.retain(|_, ack| now.duration_since(ack.last_poll) < FORGET_AFTER);
                if acks.len() >= MAX_REPLICAS {
                    return;
                }
            }
            let ack = acks.entry(id.to_owned()).or_insert_with(|| Ack {
                frame_no: 0,
                number: self.next_number.fetch_add(1, Ordering::Relaxed),
                last_poll: now,
                caught_up: now,
            });
            ack.frame_no = ack.frame_no.max(frame_no);
            ack.last_poll = now;
            if ack.frame_no >= durable {
                ack.caught_up = now;
            }
            if required == 0 {
                return;
            }
            let mut held: Vec<u64> = acks.values().map(|a| a.frame_no).collect();
            held.sort_unstable_by(|a, b| b.cmp(a));
            held.get(required - 1).copied().unwrap_or(0)
        };
        let mut confirmed = self.confirmed.lock().unwrap_or_else(|p| p.into_inner());
        if newest > *confirmed {
            *confirmed = newest;
            self.advanced.notify_all();
        }
    }

    /// Replicas that polled within `window`, in the order first seen;
    /// `durable` is the primary's newest durable frame.
    pub fn replicas(&self, window: Duration, durable: u64) -> Vec<ReplicaPosition> {
        let now = Instant::now();
        let acks = self.acks.lock().unwrap_or_else(|p| p.into_inner());
        let mut recent: Vec<ReplicaPosition> = acks
            .iter()
            .filter(|(_, ack)| now.duration_since(ack.last_poll) < window)
            .map(|(id, ack)| ReplicaPosition {
                id: id.clone(),
                number: ack.number,
                frame_no: ack.frame_no,
                since_poll: now.duration_since(ack.last_poll),
                lag: match ack.frame_no >= durable {
                    true => Duration::ZERO,
                    false => now.duration_since(ack.caught_up),
                },
            })
            .collect();
        recent.sort_by_key(|r| r.number);
        recent
    }

    /// Blocks until `required` replicas hold `frame_no`, or the timeout.
    pub fn wait(&self, frame_no: u64) -> Result<(), Unconfirmed> {
        let required = self.required();
        if required == 0 {
            return Ok(());
        }
        let started = Instant::now();
        let timeout = Duration::from_millis(self.timeout_ms.load(Ordering::SeqCst));
        let mut confirmed = self.confirmed.lock().unwrap_or_else(|p| p.into_inner());
        while *confirmed < frame_no {
            let waited = started.elapsed();
            if waited >= timeout {
                drop(confirmed);
                return Err(Unconfirmed {
                    required,
                    holding: self.holding(frame_no),
                    waited,
                });
            }
            confirmed = self
                .advanced
                .wait_timeout(confirmed, timeout - waited)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Ok(())
    }

    /// How many replicas hold `frame_no`.
    fn holding(&self, frame_no: u64) -> usize {
        let acks = self.acks.lock().unwrap_or_else(|p| p.into_inner());
        acks.values().filter(|ack| ack.frame_no >= frame_no).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_commit_waits_for_the_nth_replica() {
        let sync = Arc::new(SyncReplicas::default());
        sync.require(2, Duration::from_secs(10));
        sync.acknowledge("a", 10, 10);
        let waiter = {
            let sync = sync.clone();
            std::thread::spawn(move || sync.wait(10))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "one replica of two holds frame 10");
        sync.acknowledge("b", 12, 12);
        assert_eq!(waiter.join().unwrap(), Ok(()));
        // An acknowledgement never goes back.
        sync.acknowledge("b", 3, 12);
        assert_eq!(sync.wait(10), Ok(()));
    }

    #[test]
    fn without_enough_replicas_the_wait_ends_at_the_timeout() {
        let sync = SyncReplicas::default();
        sync.require(1, Duration::from_millis(100));
        let err = sync.wait(5).unwrap_err();
        assert_eq!((err.required, err.holding), (1, 0));
        assert!(err.waited >= Duration::from_millis(100));
    }

    #[test]
    fn positions_are_kept_without_synchronous_commits_and_age_out() {
        let sync = SyncReplicas::default();
        sync.acknowledge("a", 4, 4);
        sync.acknowledge("b", 2, 4);
        let seen = sync.replicas(Duration::from_secs(30), 6);
        let ids: Vec<_> = seen
            .iter()
            .map(|r| (r.id.as_str(), r.number, r.frame_no))
            .collect();
        assert_eq!(ids, [("a", 1, 4), ("b", 2, 2)]);
        sync.acknowledge("b", 6, 6);
        let b = &sync.replicas(Duration::from_secs(30), 6)[1];
        assert_eq!((b.number, b.frame_no, b.lag), (2, 6, Duration::ZERO));
        std::thread::sleep(Duration::from_millis(20));
        assert!(sync.replicas(Duration::from_millis(10), 6).is_empty());
    }

    #[test]
    fn asynchronous_commits_do_not_wait() {
        let sync = SyncReplicas::default();
        assert_eq!(sync.wait(u64::MAX), Ok(()));
    }
}
