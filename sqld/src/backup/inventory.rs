//! What the store holds, read from object names alone: per log id, its
//! snapshots and segments in frame order, and the generations they form
//! (a snapshot and the unbroken run of segments after it), with the first
//! and last point each can restore to.

use std::collections::BTreeMap;

use super::naming::{ObjectName, SegmentName, SnapshotName};

#[derive(Debug, Default)]
pub struct Inventory {
    /// Oldest first (by the time of their first object).
    pub logs: Vec<LogBackup>,
}

#[derive(Debug, Default)]
pub struct LogBackup {
    pub log_id: String,
    /// By frame_no.
    pub snapshots: Vec<SnapshotName>,
    /// By first frame.
    pub segments: Vec<SegmentName>,
}

/// A point a restore can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub frame_no: u64,
    pub time_ms: u64,
}

#[derive(Debug)]
pub struct Generation<'a> {
    pub snapshot: &'a SnapshotName,
    /// The segments with frames after the snapshot, unbroken.
    pub segments: Vec<&'a SegmentName>,
    pub first: Point,
    pub last: Point,
}

impl Inventory {
    pub fn new(names: Vec<ObjectName>) -> Self {
        let mut logs: BTreeMap<String, LogBackup> = BTreeMap::new();
        for name in names {
            let log = logs
                .entry(name.log_id().to_owned())
                .or_insert_with(|| LogBackup {
                    log_id: name.log_id().to_owned(),
                    ..Default::default()
                });
            match name {
                ObjectName::Snapshot(s) => log.snapshots.push(s),
                ObjectName::Segment(s) => log.segments.push(s),
            }
        }
        let mut logs: Vec<LogBackup> = logs.into_values().collect();
        for log in &mut logs {
            log.snapshots.sort_by_key(|s| s.frame_no);
            log.segments.sort_by_key(|s| s.first_frame_no);
        }
        logs.sort_by_key(|l| l.first_time_ms());
        Inventory { logs }
    }

    pub fn log(&self, log_id: &str) -> Option<&LogBackup> {
        self.logs.iter().find(|l| l.log_id == log_id)
    }
}

impl LogBackup {
    pub fn first_time_ms(&self) -> u64 {
        let snap = self.snapshots.iter().map(|s| s.time_ms).min();
        let seg = self.segments.iter().map(|s| s.first_time_ms).min();
        snap.into_iter().chain(seg).min().unwrap_or(0)
    }

    /// The newest frame archived (in a segment or a snapshot).
    pub fn last_frame_no(&self) -> Option<u64> {
        let snap = self.snapshots.iter().map(|s| s.frame_no).max();
        let seg = self.segments.iter().map(|s| s.last_frame_no).max();
        snap.into_iter().chain(seg).max()
    }

    /// The generation opened by `snapshot`.
    pub fn generation<'a>(&'a self, snapshot: &'a SnapshotName) -> Generation<'a> {
        let first = Point {
            frame_no: snapshot.frame_no,
            time_ms: snapshot.time_ms,
        };
        let mut last = first;
        let mut segments = Vec::new();
        for seg in &self.segments {
            if seg.last_frame_no <= last.frame_no {
                continue;
            }
            if seg.first_frame_no > last.frame_no + 1 {
                break;
            }
            last = Point {
                frame_no: seg.last_frame_no,
                time_ms: seg.last_time_ms.max(last.time_ms),
            };
            segments.push(seg);
        }
        Generation {
            snapshot,
            segments,
            first,
            last,
        }
    }

    pub fn generations(&self) -> Vec<Generation<'_>> {
        self.snapshots.iter().map(|s| self.generation(s)).collect()
    }
}
