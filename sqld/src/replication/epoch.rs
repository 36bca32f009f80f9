//! Epochs (timelines): every promotion starts a new epoch of the same log at
//! the frame after the promoted replica's last applied frame, and the log
//! keeps that history, as PostgreSQL keeps its timeline history. Frame
//! numbers stay one sequence; the history says which frames two epochs
//! share, so a replica can tell whether it may follow a new primary as it
//! is or holds frames the new primary never had (a divergent tail).
//!
//! A leaf: plain data and the one decision made from it.

use serde::{Deserialize, Serialize};

/// The epoch of a log no promotion has touched.
pub const FIRST_EPOCH: u64 = 1;

pub fn first_epoch() -> u64 {
    FIRST_EPOCH
}

/// Epoch `epoch` begins with frame `first_frame_no`: frames before it are
/// the previous epoch's, as far as the promoted replica had applied them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochStart {
    pub epoch: u64,
    pub first_frame_no: u64,
}

/// What a replica in `epoch`, having applied up to `applied`, may do with a
/// primary whose log is in `primary_epoch` with `history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejoin {
    /// Same epoch, or a later one whose history contains every frame the
    /// replica applied: follow on from `applied`, in `primary_epoch`.
    Follow,
    /// The replica applied frames from `first_divergent` on that the new
    /// epoch does not have: they must be discarded (re-bootstrap).
    Diverged { first_divergent: u64 },
    /// The primary is in an older epoch than the replica: it was replaced
    /// and must not be followed (it is to be fenced).
    StalePrimary,
}

/// Decides how a replica rejoins a primary's timeline.
pub fn rejoin(epoch: u64, applied: u64, primary_epoch: u64, history: &[EpochStart]) -> Rejoin {
    if primary_epoch == epoch {
        return Rejoin::Follow;
    }
    if primary_epoch < epoch {
        return Rejoin::StalePrimary;
    }
    // The first epoch after the replica's is where the timelines part:
    // the replica's own epoch continued past that frame only on the old
    // primary.
    let parted_at = history
        .iter()
        .filter(|start| start.epoch > epoch)
        .map(|start| start.first_frame_no)
        .min();
    match parted_at {
        Some(first) if applied >= first => Rejoin::Diverged {
            first_divergent: first,
        },
        Some(_) => Rejoin::Follow,
        // A later epoch without its history entry: nothing proves the
        // replica's frames are shared, so they are not trusted.
        None => Rejoin::Diverged { first_divergent: 0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history() -> Vec<EpochStart> {
        vec![
            EpochStart {
                epoch: 2,
                first_frame_no: 101,
            },
            EpochStart {
                epoch: 3,
                first_frame_no: 151,
            },
        ]
    }

    #[test]
    fn a_replica_at_or_before_the_promotion_point_follows() {
        assert_eq!(rejoin(1, 100, 2, &history()), Rejoin::Follow);
        assert_eq!(rejoin(1, 40, 3, &history()), Rejoin::Follow);
        assert_eq!(rejoin(2, 150, 3, &history()), Rejoin::Follow);
        assert_eq!(rejoin(3, 900, 3, &history()), Rejoin::Follow);
    }

    #[test]
    fn a_replica_past_the_promotion_point_has_diverged() {
        assert_eq!(
            rejoin(1, 101, 2, &history()),
            Rejoin::Diverged {
                first_divergent: 101
            }
        );
        // Epoch 2 parted from epoch 1 at 101, whatever epoch 3 did later.
        assert_eq!(
            rejoin(1, 120, 3, &history()),
            Rejoin::Diverged {
                first_divergent: 101
            }
        );
        assert_eq!(
            rejoin(2, 151, 3, &history()),
            Rejoin::Diverged {
                first_divergent: 151
            }
        );
    }

    #[test]
    fn an_older_primary_is_not_followed() {
        assert_eq!(rejoin(3, 10, 2, &history()), Rejoin::StalePrimary);
    }

    #[test]
    fn a_newer_epoch_without_history_is_not_trusted() {
        assert_eq!(
            rejoin(1, 5, 2, &[]),
            Rejoin::Diverged { first_divergent: 0 }
        );
    }
}
