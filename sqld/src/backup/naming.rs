//! Object names in the backup store. Everything a restore needs to choose
//! objects is in their names: the log id, the frame range and the commit
//! times (Unix milliseconds), so a restore never relies on the store's
//! modification times or on a listing's order. Numbers are zero-padded so
//! names sort as their numbers do.
//!
//! ```text
//! <prefix>/<log id>/snapshot-<frame_no>-<time>.db.zst
//! <prefix>/<log id>/segment-<first frame>-<last frame>-<first commit time>-<last commit time>.zst
//! ```
//!
//! A snapshot is the database as of `frame_no` and opens a generation; the
//! segments after it hold every later frame of that log, in order.

/// The name a log's objects go under: its id, and past the first epoch
/// the epoch too. A promoted primary archives its epoch apart, so frames an
/// old primary uploaded past the promotion point (a divergent tail) are
/// never mixed with the new epoch's frames of the same numbers.
pub fn log_name(log_id: &str, epoch: u64) -> String {
    match epoch {
        crate::replication::epoch::FIRST_EPOCH => log_id.to_owned(),
        _ => format!("{log_id}.epoch-{epoch}"),
    }
}

/// One archived object, as its name describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectName {
    Snapshot(SnapshotName),
    Segment(SegmentName),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotName {
    pub log_id: String,
    /// The database as of this frame (0: before the log's first frame).
    pub frame_no: u64,
    /// When it was taken (after the commit of `frame_no`).
    pub time_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentName {
    pub log_id: String,
    pub first_frame_no: u64,
    /// Always a commit frame: segments hold whole transactions.
    pub last_frame_no: u64,
    /// Commit time of the segment's first transaction.
    pub first_time_ms: u64,
    /// Commit time of its last transaction.
    pub last_time_ms: u64,
}

const SNAPSHOT_PREFIX: &str = "snapshot-";
const SNAPSHOT_SUFFIX: &str = ".db.zst";
const SEGMENT_PREFIX: &str = "segment-";
const SEGMENT_SUFFIX: &str = ".zst";

impl SnapshotName {
    /// The name relative to the store's prefix.
    pub fn key(&self) -> String {
        format!(
            "{}/{SNAPSHOT_PREFIX}{:020}-{:013}{SNAPSHOT_SUFFIX}",
            self.log_id, self.frame_no, self.time_ms
        )
    }
}

impl SegmentName {
    pub fn key(&self) -> String {
        format!(
            "{}/{SEGMENT_PREFIX}{:020}-{:020}-{:013}-{:013}{SEGMENT_SUFFIX}",
            self.log_id,
            self.first_frame_no,
            self.last_frame_no,
            self.first_time_ms,
            self.last_time_ms
        )
    }
}

impl ObjectName {
    /// Reads a name relative to the store's prefix; `None` for objects
    /// sqld did not write.
    pub fn parse(key: &str) -> Option<ObjectName> {
        let (log_id, file) = key.split_once('/')?;
        if log_id.is_empty() || file.contains('/') {
            return None;
        }
        let log_id = log_id.to_owned();
        if let Some(rest) = file
            .strip_prefix(SNAPSHOT_PREFIX)
            .and_then(|r| r.strip_suffix(SNAPSHOT_SUFFIX))
        {
            let [frame_no, time_ms] = numbers(rest)?;
            return Some(ObjectName::Snapshot(SnapshotName {
                log_id,
                frame_no,
                time_ms,
            }));
        }
        let rest = file
            .strip_prefix(SEGMENT_PREFIX)?
            .strip_suffix(SEGMENT_SUFFIX)?;
        let [first_frame_no, last_frame_no, first_time_ms, last_time_ms] = numbers(rest)?;
        (first_frame_no <= last_frame_no).then_some(ObjectName::Segment(SegmentName {
            log_id,
            first_frame_no,
            last_frame_no,
            first_time_ms,
            last_time_ms,
        }))
    }

    pub fn log_id(&self) -> &str {
        match self {
            ObjectName::Snapshot(s) => &s.log_id,
            ObjectName::Segment(s) => &s.log_id,
        }
    }

    pub fn key(&self) -> String {
        match self {
            ObjectName::Snapshot(s) => s.key(),
            ObjectName::Segment(s) => s.key(),
        }
    }
}

/// Exactly `N` dash-separated decimal numbers.
fn numbers<const N: usize>(s: &str) -> Option<[u64; N]> {
    let mut out = [0u64; N];
    let mut parts = s.split('-');
    for slot in out.iter_mut() {
        let part = parts.next()?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = part.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_epoch_after_the_first_is_archived_apart() {
        assert_eq!(log_name("abc", 1), "abc");
        assert_eq!(log_name("abc", 2), "abc.epoch-2");
        let name = SnapshotName {
            log_id: log_name("abc", 3),
            frame_no: 7,
            time_ms: 9,
        };
        let key = ObjectName::Snapshot(name.clone()).key();
        assert_eq!(ObjectName::parse(&key), Some(ObjectName::Snapshot(name)));
    }

    #[test]
    fn names_round_trip_and_sort_by_number() {
        let seg = SegmentName {
            log_id: "abc".into(),
            first_frame_no: 9,
            last_frame_no: 120,
            first_time_ms: 1_700_000_000_000,
            last_time_ms: 1_700_000_000_500,
        };
        assert_eq!(
            ObjectName::parse(&seg.key()),
            Some(ObjectName::Segment(seg.clone()))
        );
        let snap = SnapshotName {
            log_id: "abc".into(),
            frame_no: 0,
            time_ms: 5,
        };
        assert_eq!(
            ObjectName::parse(&snap.key()),
            Some(ObjectName::Snapshot(snap))
        );
        let later = SegmentName {
            first_frame_no: 121,
            last_frame_no: 1000,
            ..seg.clone()
        };
        assert!(seg.key() < later.key());
        for junk in [
            "abc/segment-1-2.zst",
            "abc/other",
            "x",
            "abc/snapshot-1-x.db.zst",
        ] {
            assert_eq!(ObjectName::parse(junk), None, "{junk}");
        }
    }
}
