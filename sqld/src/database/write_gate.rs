//! One writer at a time, queued in the server. SQLite allows a single
//! writer and makes the others retry from its busy handler, which sleeps
//! with growing back-off (up to 100 ms a try): under contention, commits
//! wait far longer than the lock is held. Sessions instead take this gate
//! before their first write and keep it until their transaction ends, so a
//! waiting writer starts the moment the previous one finishes.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct WriteGate {
    held: Mutex<bool>,
    freed: Condvar,
}

impl WriteGate {
    /// Waits up to `timeout` for the gate; false if it stayed taken.
    pub fn acquire(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut held = self.held.lock().expect("write gate poisoned");
        while *held {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            held = self
                .freed
                .wait_timeout(held, left)
                .expect("write gate poisoned")
                .0;
        }
        *held = true;
        true
    }

    pub fn release(&self) {
        *self.held.lock().expect("write gate poisoned") = false;
        self.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn one_holder_at_a_time_and_waiters_start_on_release() {
        let gate = Arc::new(WriteGate::default());
        assert!(gate.acquire(Duration::ZERO));
        assert!(!gate.acquire(Duration::from_millis(20)), "taken");
        let waiter = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                assert!(gate.acquire(Duration::from_secs(10)));
                started.elapsed()
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        gate.release();
        let waited = waiter.join().unwrap();
        assert!(waited >= Duration::from_millis(40), "{waited:?}");
        assert!(!gate.acquire(Duration::ZERO), "the waiter holds it now");
        gate.release();
        assert!(gate.acquire(Duration::ZERO));
    }
}
