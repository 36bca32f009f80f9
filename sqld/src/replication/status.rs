//! A replica's progress, shared by the follower that advances it and the
//! sessions, `/ready` and `/metrics` that read it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long one long-poll asks the primary to wait for new frames: silence
/// longer than this (plus a margin) means the primary is not answering.
pub const LONG_POLL: Duration = Duration::from_secs(10);

/// What the replica knows about its progress; read by `/ready` and
/// `/metrics`, and by sessions waiting to read their own writes.
#[derive(Debug, Default)]
pub struct ReplicaStatus {
    pub bootstrapped: AtomicBool,
    pub applied_frame_no: AtomicU64,
    pub primary_frame_no: AtomicU64,
    /// The epoch of the log this replica follows; sent with forwarded
    /// writes, so an old primary learns it was replaced.
    pub epoch: AtomicU64,
    /// The id of the log this replica follows.
    log_id: Mutex<String>,
    /// Milliseconds since the Unix epoch of the last good answer.
    pub last_contact_ms: AtomicU64,
    /// Milliseconds since the Unix epoch when this replica last had
    /// everything the primary had reported.
    caught_up_ms: AtomicU64,
    /// How many times the database was replaced by a snapshot since the
    /// process started: sessions opened before reopen their connection.
    generation: AtomicU64,
    /// Wakes sessions waiting (on their own threads) to read their writes.
    applied_lock: Mutex<()>,
    applied: Condvar,
}

impl ReplicaStatus {
    pub fn lag_frames(&self) -> u64 {
        self.primary_frame_no
            .load(Ordering::SeqCst)
            .saturating_sub(self.applied_frame_no.load(Ordering::SeqCst))
    }

    /// How long this replica has been behind: since it last had applied
    /// everything the primary reported, or, while caught up with a primary
    /// it has not heard from for longer than a long-poll, since that contact.
    pub fn lag_seconds(&self) -> f64 {
        let now = now_ms();
        let since = |ms: &AtomicU64| now.saturating_sub(ms.load(Ordering::SeqCst)) as f64 / 1e3;
        if !self.bootstrapped.load(Ordering::SeqCst) {
            return 0.0;
        }
        if self.lag_frames() > 0 {
            return since(&self.caught_up_ms);
        }
        let silent = since(&self.last_contact_ms);
        if silent > (LONG_POLL + Duration::from_secs(5)).as_secs_f64() {
            silent
        } else {
            0.0
        }
    }

    pub fn log_id(&self) -> String {
        self.log_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn follows(&self, log_id: &str, epoch: u64) {
        *self.log_id.lock().unwrap_or_else(|p| p.into_inner()) = log_id.to_owned();
        self.epoch.store(epoch, Ordering::SeqCst);
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Serving from here on; lag is counted from now at the earliest.
    pub(super) fn mark_bootstrapped(&self) {
        self.caught_up_ms.store(now_ms(), Ordering::SeqCst);
        self.bootstrapped.store(true, Ordering::SeqCst);
        self.note_if_caught_up();
    }

    /// Records that the primary is at `primary_frame_no` (at least).
    pub(super) fn primary_at(&self, primary_frame_no: u64) {
        self.primary_frame_no
            .fetch_max(primary_frame_no, Ordering::SeqCst);
        self.note_if_caught_up();
    }

    /// A good answer from the primary just now.
    pub(super) fn contact(&self) {
        self.last_contact_ms.store(now_ms(), Ordering::SeqCst);
    }

    /// The database was replaced by a snapshot.
    pub(super) fn new_generation(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Frames up to `frame_no` are applied: wakes the sessions waiting.
    pub(super) fn mark_applied(&self, frame_no: u64) {
        let _lock = self.applied_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.applied_frame_no.store(frame_no, Ordering::SeqCst);
        self.applied.notify_all();
    }

    fn note_if_caught_up(&self) {
        if self.lag_frames() == 0 {
            self.caught_up_ms.store(now_ms(), Ordering::SeqCst);
        }
    }

    /// Blocks the calling thread until frame `frame_no` is applied, up to
    /// `timeout`; whether it was.
    pub fn wait_applied(&self, frame_no: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut lock = self.applied_lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if self.applied_frame_no.load(Ordering::SeqCst) >= frame_no {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            lock = self
                .applied
                .wait_timeout(lock, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_in_seconds_counts_from_the_last_time_the_replica_was_caught_up() {
        let status = ReplicaStatus::default();
        assert_eq!(status.lag_seconds(), 0.0, "not serving yet");
        status.mark_bootstrapped();
        status.applied_frame_no.store(10, Ordering::SeqCst);
        status.primary_at(10);
        status.last_contact_ms.store(now_ms(), Ordering::SeqCst);
        assert_eq!(status.lag_seconds(), 0.0);
        // Behind for three seconds.
        status
            .caught_up_ms
            .store(now_ms() - 3_000, Ordering::SeqCst);
        status.primary_at(12);
        let lag = status.lag_seconds();
        assert!((3.0..4.0).contains(&lag), "{lag}");
        // Caught up again, but the primary has been silent for a minute.
        status.applied_frame_no.store(12, Ordering::SeqCst);
        status.primary_at(12);
        status
            .last_contact_ms
            .store(now_ms() - 60_000, Ordering::SeqCst);
        let lag = status.lag_seconds();
        assert!((60.0..61.0).contains(&lag), "{lag}");
    }

    #[test]
    fn waiting_sessions_wake_when_their_frame_is_applied() {
        let status = std::sync::Arc::new(ReplicaStatus::default());
        let waiter = {
            let status = status.clone();
            std::thread::spawn(move || status.wait_applied(5, Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(20));
        status.mark_applied(5);
        assert!(waiter.join().unwrap());
        assert!(
            !status.wait_applied(6, Duration::from_millis(20)),
            "times out"
        );
    }
}
