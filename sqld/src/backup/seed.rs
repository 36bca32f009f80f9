//! `--bootstrap-from-backup`: a new replica's database rebuilt from the
//! backup store instead of downloaded from its primary, so adding replicas
//! costs the primary no snapshot. The store is trusted only where it
//! continues the primary's log exactly: the series of the primary's log id
//! and epoch (`naming::log_name`), restored to its newest point by the
//! ordinary restore, from which the primary must still serve the next
//! frame (checked once the restore is done). In every other case the
//! replica bootstraps from the primary as before, and says why.

use std::path::{Path, PathBuf};

use super::naming::log_name;
use super::restore::{restore, Target};
use super::store::BackupStore;
use super::BackupError;
use crate::replication::log::LogInfo;

/// A database restored for a replica.
#[derive(Debug)]
pub struct Seed {
    /// The restored database file (in the directory given to `restore_latest`).
    pub db_file: PathBuf,
    /// The last commit it holds.
    pub frame_no: u64,
    /// Compressed bytes downloaded.
    pub downloaded: u64,
}

/// Why the store cannot bootstrap this replica.
#[derive(Debug, thiserror::Error)]
pub enum Fallback {
    #[error("the store holds no backup of the primary's log {0}")]
    NoBackup(String),
    #[error("the store cannot be read: {0}")]
    Unreachable(String),
    #[error("the backup cannot be restored: {0}")]
    Unrestorable(String),
    #[error("the primary cannot be asked: {0}")]
    Primary(String),
    #[error("the restored frame {frame_no} does not continue the primary's log: {why}")]
    Discontinuous { frame_no: u64, why: String },
}

impl Fallback {
    /// The `reason` label of `sqld_replication_backup_bootstrap_fallbacks_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Fallback::NoBackup(_) => "no_backup",
            Fallback::Unreachable(_) => "unreachable",
            Fallback::Unrestorable(_) => "unrestorable",
            Fallback::Primary(_) => "primary",
            Fallback::Discontinuous { .. } => "discontinuous",
        }
    }
}

/// Restores the newest point of the primary's current series (as `primary`
/// describes it) into `dir`, which is emptied first.
pub async fn restore_latest(
    store: &BackupStore,
    primary: &LogInfo,
    dir: &Path,
) -> Result<Seed, Fallback> {
    remove(dir);
    let series = log_name(&primary.log_id, primary.epoch);
    match restore(store, Target::Latest, Some(&series), dir).await {
        Ok(restored) => Ok(Seed {
            db_file: dir.join(super::restore::DB_FILE),
            frame_no: restored.frame_no,
            downloaded: restored.downloaded,
        }),
        Err(BackupError::Empty(_)) => Err(Fallback::NoBackup(series)),
        Err(BackupError::Store(e)) => Err(Fallback::Unreachable(e.to_string())),
        Err(e) => Err(Fallback::Unrestorable(e.to_string())),
    }
}

/// Whether the primary, as `now` describes it after the restore, continues
/// a database restored to `frame_no` from the series `then` named: the
/// same log and epoch, holding that frame and still serving the next.
pub fn continues(then: &LogInfo, now: &LogInfo, frame_no: u64) -> Result<(), Fallback> {
    let discontinuous = |why: String| Fallback::Discontinuous { frame_no, why };
    if now.log_id != then.log_id || now.epoch != then.epoch {
        return Err(discontinuous(format!(
            "the primary moved to log {} epoch {} during the restore",
            now.log_id, now.epoch
        )));
    }
    if frame_no > now.current_frame_no {
        return Err(discontinuous(format!(
            "the primary's log ends at frame {}",
            now.current_frame_no
        )));
    }
    if frame_no + 1 < now.first_frame_no() {
        return Err(discontinuous(format!(
            "the primary compacted its log: it serves frames from {} only",
            now.first_frame_no()
        )));
    }
    Ok(())
}

/// Removes a restore's directory and its building directory.
pub fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let mut building = dir.as_os_str().to_owned();
    building.push(".restoring");
    let _ = std::fs::remove_dir_all(PathBuf::from(building));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(log_id: &str, epoch: u64, current: u64, oldest: u64) -> LogInfo {
        LogInfo {
            log_id: log_id.into(),
            current_frame_no: current,
            snapshot_frame_no: 0,
            epoch,
            history: Vec::new(),
            oldest_frame_no: oldest,
        }
    }

    #[test]
    fn only_a_point_the_primary_continues_from_is_accepted() {
        let then = info("a", 1, 100, 1);
        assert!(continues(&then, &info("a", 1, 120, 1), 100).is_ok());
        // The next frame is the oldest still served.
        assert!(continues(&then, &info("a", 1, 120, 101), 100).is_ok());
        let refused = |now: LogInfo, frame_no: u64| {
            continues(&then, &now, frame_no)
                .expect_err("refused")
                .reason()
        };
        assert_eq!(refused(info("a", 1, 120, 102), 100), "discontinuous");
        assert_eq!(refused(info("a", 1, 99, 1), 100), "discontinuous");
        assert_eq!(refused(info("b", 1, 120, 1), 100), "discontinuous");
        assert_eq!(refused(info("a", 2, 120, 1), 100), "discontinuous");
    }
}
