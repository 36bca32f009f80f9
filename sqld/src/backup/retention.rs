//! `--backup-retention`: deletes what no restore within the window needs.
//! For each log id the generation opened by the newest snapshot taken
//! before the window's start is still needed (to restore to the start);
//! older snapshots, and segments that end at or before that snapshot, are
//! not. An older log id (the one a restored primary replaced) goes
//! entirely once the current log alone covers the window.

use std::time::Duration;

use super::inventory::{Inventory, LogBackup};
use super::store::BackupStore;
use super::timeline::now_ms;
use crate::metrics::Metrics;

/// The keys retention deletes, given what the store holds.
pub fn expired(
    inventory: &Inventory,
    current_log_id: &str,
    now_ms: u64,
    window: Duration,
) -> Vec<String> {
    let cutoff = now_ms.saturating_sub(window.as_millis() as u64);
    let current_covers_window = inventory
        .log(current_log_id)
        .is_some_and(|log| log.snapshots.iter().any(|s| s.time_ms <= cutoff));
    let mut keys = Vec::new();
    for log in &inventory.logs {
        let newest_time = log
            .snapshots
            .iter()
            .map(|s| s.time_ms)
            .chain(log.segments.iter().map(|s| s.last_time_ms))
            .max()
            .unwrap_or(0);
        if log.log_id != current_log_id && current_covers_window && newest_time < cutoff {
            keys.extend(log.snapshots.iter().map(|s| s.key()));
            keys.extend(log.segments.iter().map(|s| s.key()));
        } else {
            keys.extend(expired_in_log(log, cutoff));
        }
    }
    keys
}

fn expired_in_log(log: &LogBackup, cutoff: u64) -> Vec<String> {
    let Some(needed) = log.snapshots.iter().rev().find(|s| s.time_ms <= cutoff) else {
        return Vec::new();
    };
    let snapshots = log
        .snapshots
        .iter()
        .filter(|s| s.frame_no < needed.frame_no)
        .map(|s| s.key());
    let segments = log
        .segments
        .iter()
        .filter(|s| s.last_frame_no <= needed.frame_no)
        .map(|s| s.key());
    snapshots.chain(segments).collect()
}

/// Lists the store and deletes what `expired` names.
pub async fn apply(
    store: &BackupStore,
    current_log_id: &str,
    window: Duration,
    metrics: &Metrics,
) -> Result<usize, object_store::Error> {
    let inventory = Inventory::new(store.list().await?);
    let keys = expired(&inventory, current_log_id, now_ms(), window);
    for key in &keys {
        store.delete(key).await?;
        metrics.backup_objects_deleted.inc();
    }
    if !keys.is_empty() {
        tracing::info!(
            deleted = keys.len(),
            "backup retention deleted expired objects"
        );
    }
    Ok(keys.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::naming::{ObjectName, SegmentName, SnapshotName};

    fn snap(log: &str, frame_no: u64, time_ms: u64) -> ObjectName {
        ObjectName::Snapshot(SnapshotName {
            log_id: log.into(),
            frame_no,
            time_ms,
        })
    }

    fn seg(log: &str, first: u64, last: u64, time_ms: u64) -> ObjectName {
        ObjectName::Segment(SegmentName {
            log_id: log.into(),
            first_frame_no: first,
            last_frame_no: last,
            first_time_ms: time_ms,
            last_time_ms: time_ms,
        })
    }

    #[test]
    fn keeps_the_generation_that_covers_the_window_start() {
        let names = vec![
            snap("a", 0, 1000),
            seg("a", 1, 10, 1100),
            snap("a", 10, 2000),
            seg("a", 11, 20, 2100),
            snap("a", 20, 3000),
            seg("a", 21, 30, 3100),
        ];
        let keys = |v: &[ObjectName]| {
            let mut k: Vec<_> = v.iter().map(|n| n.key()).collect();
            k.sort();
            k
        };
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        let inv = Inventory::new(names.clone());
        // Window starts at 2500: the snapshot at 2000 is needed.
        let gone = expired(&inv, "a", 3500, Duration::from_millis(1000));
        assert_eq!(sorted(gone), keys(&names[0..2]));
        // Window starts before everything: nothing goes.
        assert!(expired(&inv, "a", 3500, Duration::from_millis(5000)).is_empty());

        // An older log goes once the current one covers the window.
        let mut both = names.clone();
        both.extend([snap("b", 0, 4000), seg("b", 1, 5, 4100)]);
        let inv = Inventory::new(both);
        let gone = expired(&inv, "b", 10_000, Duration::from_millis(5000));
        assert_eq!(sorted(gone), keys(&names));
        let gone = expired(&inv, "b", 8_000, Duration::from_millis(5000));
        assert_eq!(sorted(gone), keys(&names[0..4]));
    }
}
