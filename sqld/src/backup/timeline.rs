//! When each commit became durable. The replication log numbers frames but
//! does not date them; the archiver watches the log's durable frame_no and
//! notes when each value appeared, so every archived commit carries its
//! time (to the millisecond, a little late at worst) and a restore can
//! stop at a wall-clock time.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Observations kept while the store is away: past this many, the oldest
/// are merged (their commits take the next observation's, later, time).
const MAX_ENTRIES: usize = 1 << 20;

#[derive(Default)]
pub struct Timeline {
    /// (newest durable frame_no, when it was first seen), both increasing.
    entries: Mutex<VecDeque<(u64, u64)>>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Timeline {
    /// Frames up to `frame_no` were durable at `time_ms`.
    pub fn record(&self, frame_no: u64, time_ms: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let last = entries.back().copied();
        if last.is_some_and(|(f, _)| f >= frame_no) {
            return;
        }
        let time_ms = last.map_or(time_ms, |(_, t)| t.max(time_ms));
        if entries.len() >= MAX_ENTRIES {
            entries.pop_front();
        }
        entries.push_back((frame_no, time_ms));
    }

    /// When `frame_no` became durable, if it was seen.
    pub fn time_of(&self, frame_no: u64) -> Option<u64> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let i = entries.partition_point(|(f, _)| *f < frame_no);
        entries.get(i).map(|(_, t)| *t)
    }

    /// Frames up to `frame_no` are archived: their times are no longer
    /// needed.
    pub fn forget_upto(&self, frame_no: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        while entries.front().is_some_and(|(f, _)| *f <= frame_no) {
            entries.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_takes_the_time_it_was_first_seen_durable() {
        let t = Timeline::default();
        t.record(10, 100);
        t.record(10, 150);
        t.record(25, 200);
        assert_eq!(t.time_of(3), Some(100));
        assert_eq!(t.time_of(10), Some(100));
        assert_eq!(t.time_of(11), Some(200));
        assert_eq!(t.time_of(26), None);
        t.forget_upto(10);
        assert_eq!(t.time_of(11), Some(200));
    }
}
