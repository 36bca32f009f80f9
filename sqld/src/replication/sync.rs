//! Synchronous replication (`--synchronous-replicas N`): a commit is
//! acknowledged to its client only once N replicas hold it durably. A
//! replica's next poll position is its acknowledgement, since it records a
//! batch (after an fsync) before it asks for what follows; so no extra
//! message is needed, and a commit waits about one poll round trip.
//!
//! With fewer than N replicas keeping up, commits wait up to the timeout,
//! then fail with a clear error (the commit is on the primary, unconfirmed),
//! as PostgreSQL's synchronous_commit does when its wait is canceled.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// The frames each replica holds durably, and the newest one N of them do.
pub struct SyncReplicas {
    required: AtomicUsize,
    timeout_ms: AtomicU64,
    acks: Mutex<HashMap<String, u64>>,
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
            confirmed: Mutex::new(0),
            advanced: Condvar::new(),
        }
    }
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

    /// Replica `id` holds every frame up to `frame_no` durably.
    pub fn acknowledge(&self, id: &str, frame_no: u64) {
        let required = self.required();
        if required == 0 {
            return;
        }
        let newest = {
            let mut acks = self.acks.lock().unwrap_or_else(|p| p.into_inner());
            let ack = acks.entry(id.to_owned()).or_default();
            *ack = (*ack).max(frame_no);
            let mut held: Vec<u64> = acks.values().copied().collect();
            held.sort_unstable_by(|a, b| b.cmp(a));
            held.get(required - 1).copied().unwrap_or(0)
        };
        let mut confirmed = self.confirmed.lock().unwrap_or_else(|p| p.into_inner());
        if newest > *confirmed {
            *confirmed = newest;
            self.advanced.notify_all();
        }
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
        acks.values().filter(|ack| **ack >= frame_no).count()
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
        sync.acknowledge("a", 10);
        let waiter = {
            let sync = sync.clone();
            std::thread::spawn(move || sync.wait(10))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "one replica of two holds frame 10");
        sync.acknowledge("b", 12);
        assert_eq!(waiter.join().unwrap(), Ok(()));
        // An acknowledgement never goes back.
        sync.acknowledge("b", 3);
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
    fn asynchronous_commits_do_not_wait() {
        let sync = SyncReplicas::default();
        assert_eq!(sync.wait(u64::MAX), Ok(()));
    }
}
