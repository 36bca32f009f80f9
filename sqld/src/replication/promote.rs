//! Role changes of a data directory, made while no server runs on it:
//! a replica's directory becomes a primary's (promotion), and a former
//! primary's becomes a replica's (rejoining after a failover).
//!
//! Promotion starts a new epoch of the log the replica followed, at the
//! frame after the last one it applied, with the frames it kept
//! (`retained`), so replicas that followed the same primary follow this one
//! without a bootstrap (`epoch::rejoin`).

use std::path::Path;

use super::follower::{record_replica, saved_state, State, STATE_FILE};
use super::log::{clean_end, write_promoted, LogError, Promotion};
use super::retained;
use crate::database::{DB_FILE, LOG_DIR};

#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error("this replica has not bootstrapped from a primary yet: there is nothing to promote")]
    NeverBootstrapped,
    #[error("reading what the replica kept: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Makes the replica directory `db_dir` a primary's, returning the new
/// epoch. The database holds exactly the frames `replica.json` records.
pub fn promote(db_dir: &Path) -> Result<u64, PromoteError> {
    let state = saved_state(db_dir).ok_or(PromoteError::NeverBootstrapped)?;
    if state.log_id.is_empty() {
        return Err(PromoteError::NeverBootstrapped);
    }
    let kept = retained::read_upto(db_dir, state.applied_frame_no)?;
    let log_dir = db_dir.join(LOG_DIR);
    set_aside(&log_dir)?;
    let epoch = write_promoted(
        &log_dir,
        &db_dir.join(DB_FILE),
        &Promotion {
            log_id: &state.log_id,
            epoch: state.epoch,
            history: &state.history,
            applied: state.applied_frame_no,
            retained: &kept.records,
            retained_from: kept.first_frame_no,
        },
    )?;
    // The directory is a primary's from here on: a replica's record left
    // behind would resume following from a point the database has passed.
    forget_replica(db_dir)?;
    tracing::info!(
        epoch,
        from_frame_no = state.applied_frame_no + 1,
        kept_frames = kept.records.len() / super::frame::RECORD_SIZE,
        "promoted: a new epoch of the log begins"
    );
    Ok(epoch)
}

/// Before following a primary from `db_dir`: a log left there by this
/// directory's time as a primary is set aside (`replication.superseded`).
/// If it stopped cleanly, the database holds exactly its frames, and the
/// directory is recorded as a replica at its end: the timeline check then
/// follows on (a switchover) or finds a divergent tail and bootstraps
/// (a failover that lost some of its commits). After a crash it bootstraps.
/// Returns whether there was a log.
pub fn rejoin_as_replica(db_dir: &Path) -> Result<bool, PromoteError> {
    let log_dir = db_dir.join(LOG_DIR);
    if !log_dir.exists() {
        return Ok(false);
    }
    let end = clean_end(&log_dir)?;
    forget_replica(db_dir)?;
    set_aside(&log_dir)?;
    match end {
        Some(end) => {
            record_replica(
                db_dir,
                &State {
                    log_id: end.log_id,
                    applied_frame_no: end.last_frame_no,
                    epoch: end.epoch,
                    history: end.history,
                },
            )?;
            tracing::info!(
                frame_no = end.last_frame_no,
                "this directory held a primary's log, stopped cleanly: following on from its end"
            );
        }
        None => tracing::warn!(
            dir = %db_dir.display(),
            "this directory held a primary's log that did not stop cleanly: set aside as replication.superseded; bootstrapping from the primary"
        ),
    }
    Ok(true)
}

fn set_aside(log_dir: &Path) -> std::io::Result<()> {
    if !log_dir.exists() {
        return Ok(());
    }
    let aside = log_dir.with_extension("superseded");
    if aside.exists() {
        std::fs::remove_dir_all(&aside)?;
    }
    std::fs::rename(log_dir, &aside)
}

fn forget_replica(db_dir: &Path) -> std::io::Result<()> {
    for name in std::iter::once(STATE_FILE).chain(retained::FILES) {
        match std::fs::remove_file(db_dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    std::fs::File::open(db_dir)?.sync_all()
}
