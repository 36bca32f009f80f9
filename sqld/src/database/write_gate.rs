//! One writer at a time, queued in the server. SQLite allows a single
//! writer and makes the others retry from its busy handler, which sleeps
//! with growing back-off (up to 100 ms a try): under contention, commits
//! wait far longer than the lock is held. Sessions instead take this gate
//! before their first write and keep it until their transaction ends, so a
//! waiting writer starts the moment the previous one finishes.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct WriteGate {
    held: Mutex<bool>,
    freed: Condvar,
}

/// The gate, held: dropping it lets the next writer in.
pub struct WriteGateHeld(Arc<WriteGate>);

impl Drop for WriteGateHeld {
    fn drop(&mut self) {
        *self.0.lock() = false;
        self.0.freed.notify_one();
    }
}

impl WriteGate {
    /// Waits up to `timeout` for the gate; `None` if it stayed taken.
    pub fn acquire(self: &Arc<Self>, timeout: Duration) -> Option<WriteGateHeld> {
        let deadline = Instant::now() + timeout;
        let mut held = self.lock();
        while *held {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            held = self
                .freed
                .wait_timeout(held, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *held = true;
        Some(WriteGateHeld(self.clone()))
    }

    /// A holder that panicked still released the gate (its guard dropped
    /// while unwinding), so a poisoned lock holds a consistent flag.
    fn lock(&self) -> std::sync::MutexGuard<'_, bool> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn one_holder_at_a_time_and_waiters_start_on_release() {
        let gate = Arc::new(WriteGate::default());
        let held = gate.acquire(Duration::ZERO).unwrap();
        assert!(gate.acquire(Duration::from_millis(20)).is_none(), "taken");
        let waiter = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let held = gate.acquire(Duration::from_secs(10)).unwrap();
                (started.elapsed(), held)
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        drop(held);
        let (waited, held) = waiter.join().unwrap();
        assert!(waited >= Duration::from_millis(40), "{waited:?}");
        assert!(
            gate.acquire(Duration::ZERO).is_none(),
            "the waiter holds it now"
        );
        drop(held);
        assert!(gate.acquire(Duration::ZERO).is_some());
    }
}
