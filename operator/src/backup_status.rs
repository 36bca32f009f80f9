//! `BackupReady` and `status.backup` from what the primary exports on its
//! `/metrics` (the `sqld_backup_*` series). Pure: the reconciler fetches
//! the text, this decides what it means.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::crd::{BackupStatus, SqldCluster};
use crate::status::PartState;
use crate::validation;

/// Archive lag (seconds) past which the backup is reported not ready: the
/// newest commits would be lost with the primary's volume. The shipped
/// alert fires on the same bound.
pub const MAX_LAG_SECONDS: f64 = 300.0;

/// The backup series of one scrape (absent series are `None`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BackupMetrics {
    pub archived_frame_no: Option<i64>,
    pub lag_frames: Option<i64>,
    pub lag_seconds: Option<f64>,
    pub last_upload_seconds: Option<f64>,
    pub upload_errors: Option<f64>,
}

/// Reads the backup series out of Prometheus text exposition.
pub fn parse_metrics(text: &str) -> BackupMetrics {
    let mut m = BackupMetrics::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut parts = line.split_whitespace();
        let (Some(series), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        match name {
            "sqld_backup_archived_frame_no" => m.archived_frame_no = Some(v as i64),
            "sqld_backup_lag_frames" => m.lag_frames = Some(v as i64),
            "sqld_backup_lag_seconds" => m.lag_seconds = Some(v),
            "sqld_backup_last_upload_timestamp_seconds" => m.last_upload_seconds = Some(v),
            "sqld_backup_upload_errors_total" => m.upload_errors = Some(v),
            _ => {}
        }
    }
    m
}

/// What the reconciler learnt of the primary's backup.
#[derive(Clone, Debug)]
pub enum Scrape {
    /// The primary is not ready: nothing to ask.
    PrimaryNotReady,
    /// Its `/metrics` could not be read (the reason).
    Failed(String),
    Metrics(BackupMetrics),
}

/// `BackupReady` and `status.backup` for a cluster with `spec.backup`.
/// Fields the scrape did not provide keep their last value.
pub fn observe(c: &SqldCluster, scrape: &Scrape, now: Timestamp) -> (PartState, BackupStatus) {
    let Some(spec) = &c.spec.backup else {
        return (
            PartState::not_ready("BackupNotConfigured", "spec.backup is not set"),
            BackupStatus::default(),
        );
    };
    // A new destination starts with nothing known about it.
    let mut status = c
        .status
        .as_ref()
        .and_then(|s| s.backup.clone())
        .filter(|b| b.destination.as_deref() == Some(spec.destination.as_str()))
        .unwrap_or_default();
    status.destination = Some(spec.destination.clone());
    let m = match scrape {
        Scrape::PrimaryNotReady => {
            return (
                PartState::not_ready(
                    "PrimaryNotReady",
                    "the primary is not ready, so nothing is being archived",
                ),
                status,
            )
        }
        Scrape::Failed(why) => {
            return (
                PartState::not_ready(
                    "MetricsUnavailable",
                    format!("could not read the primary's backup metrics: {why}"),
                ),
                status,
            )
        }
        Scrape::Metrics(m) => m,
    };
    let Some(frame) = m.archived_frame_no else {
        return (
            PartState::not_ready(
                "NotArchiving",
                "the primary exports no sqld_backup_* metrics: it does not archive (its image may predate --backup-url)",
            ),
            status,
        );
    };
    let last_upload = m
        .last_upload_seconds
        .filter(|s| *s > 0.0)
        .and_then(|s| Timestamp::from_millisecond((s * 1000.0) as i64).ok());
    status.last_archived_frame = Some(frame);
    if let Some(t) = last_upload {
        status.last_successful_backup = Some(Time(t));
        if status.first_recoverability_point.is_none() {
            status.first_recoverability_point = Some(Time(t));
        }
    }
    // Retention deletes what is older than its window.
    let window_start = spec
        .retention
        .as_deref()
        .and_then(validation::duration_seconds)
        .and_then(|secs| Timestamp::from_second(now.as_second() - secs).ok());
    if let (Some(first), Some(start)) = (&mut status.first_recoverability_point, window_start) {
        if first.0 < start {
            first.0 = start;
        }
    }
    let lag = m.lag_seconds.unwrap_or(0.0);
    let state = if last_upload.is_none() {
        PartState::not_ready(
            "WaitingForFirstUpload",
            format!("nothing uploaded to {} yet", spec.destination),
        )
    } else if lag > MAX_LAG_SECONDS {
        PartState::not_ready(
            "ArchiveLagging",
            format!(
                "the oldest commit not yet archived is {lag:.0}s old (bound {MAX_LAG_SECONDS:.0}s), {} frames behind; {} upload errors so far",
                m.lag_frames.unwrap_or(0),
                m.upload_errors.unwrap_or(0.0)
            ),
        )
    } else {
        PartState::ready(
            "Archiving",
            format!("archived up to frame {frame}, {lag:.1}s behind"),
        )
    };
    (state, status)
}
