//! Prometheus metrics, all prefixed `sqld_`, in base units. One `Metrics`
//! per server, made in `run` and handed to what records into it (a shared
//! `Arc`), so each server (and each test) has its own registry, which
//! `/metrics` renders.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub connections: IntGauge,
    pub connections_total: IntCounter,
    pub connections_rejected: IntCounter,
    pub connection_panics: IntCounter,
    pub connections_authenticating: IntGauge,
    pub statements: IntCounterVec,
    pub errors: IntCounterVec,
    pub statement_duration: HistogramVec,
    pub bytes_received: IntCounter,
    pub bytes_sent: IntCounter,
    pub database_size: IntGauge,
    pub wal_size: IntGauge,
    pub replication_frame_no: IntGauge,
    pub replication_lag_frames: IntGauge,
    pub replication_lag_seconds: Gauge,
    pub replicas_connected: IntGauge,
    pub replication_frames_applied: IntCounter,
    pub replication_bootstraps: IntCounter,
    pub replication_backup_bootstraps: IntCounter,
    pub replication_backup_bootstrap_fallbacks: IntCounterVec,
    pub replication_divergent_rejoins: IntCounter,
    pub sync_commits_waiting: IntGauge,
    pub sync_commit_wait: Histogram,
    pub sync_commit_timeouts: IntCounter,
    pub epoch: IntGauge,
    pub fenced: IntGauge,
    pub frames_logged: IntCounter,
    pub log_bytes: IntCounter,
    pub snapshots: IntCounter,
    pub frames_served: IntCounter,
    pub snapshots_served: IntCounter,
    pub replication_bytes_received: IntCounter,
    pub forwarded_statements: IntCounter,
    pub read_your_writes_waits: IntCounter,
    pub backup_archived_frame_no: IntGauge,
    pub backup_lag_frames: IntGauge,
    pub backup_lag_seconds: Gauge,
    pub backup_bytes_uploaded: IntCounter,
    pub backup_segments_uploaded: IntCounter,
    pub backup_snapshots_uploaded: IntCounter,
    pub backup_upload_errors: IntCounter,
    pub backup_last_upload_timestamp: Gauge,
    pub backup_objects_deleted: IntCounter,
    pub unarchived_frames_dropped: IntCounter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let m = Metrics {
            registry: Registry::new(),
            connections: IntGauge::new("sqld_connections", "Client connections currently open")
                .unwrap(),
            connections_total: IntCounter::new(
                "sqld_connections_total",
                "Client connections accepted",
            )
            .unwrap(),
            connections_rejected: IntCounter::new(
                "sqld_connections_rejected_total",
                "Client connections refused because --max-connections was reached",
            )
            .unwrap(),
            connection_panics: IntCounter::new(
                "sqld_connection_panics_total",
                "Connections whose thread panicked (a bug: the connection was closed and its slot freed)",
            )
            .unwrap(),
            connections_authenticating: IntGauge::new(
                "sqld_connections_authenticating",
                "Client connections open that have not finished authenticating",
            )
            .unwrap(),
            statements: IntCounterVec::new(
                Opts::new(
                    "sqld_statements_total",
                    "Statements run, by command and outcome",
                ),
                &["kind", "outcome"],
            )
            .unwrap(),
            errors: IntCounterVec::new(
                Opts::new(
                    "sqld_errors_total",
                    "Errors returned to clients, by request kind and SQLSTATE class",
                ),
                &["kind", "class"],
            )
            .unwrap(),
            statement_duration: HistogramVec::new(
                HistogramOpts::new(
                    "sqld_statement_duration_seconds",
                    "Time to run a request, by kind",
                )
                .buckets(vec![
                    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
                &["kind"],
            )
            .unwrap(),
            bytes_received: IntCounter::new("sqld_bytes_received_total", "Bytes read from clients")
                .unwrap(),
            bytes_sent: IntCounter::new("sqld_bytes_sent_total", "Bytes written to clients")
                .unwrap(),
            database_size: IntGauge::new("sqld_database_size_bytes", "Size of the database file")
                .unwrap(),
            wal_size: IntGauge::new("sqld_wal_size_bytes", "Size of the write-ahead log").unwrap(),
            replication_frame_no: IntGauge::new(
                "sqld_replication_frame_no",
                "Newest frame: durable in the log on a primary, applied on a replica",
            )
            .unwrap(),
            replication_lag_frames: IntGauge::new(
                "sqld_replication_lag_frames",
                "Frames the primary has that this replica has not applied",
            )
            .unwrap(),
            frames_logged: IntCounter::new(
                "sqld_replication_frames_logged_total",
                "Frames appended to the replication log (primary)",
            )
            .unwrap(),
            log_bytes: IntCounter::new(
                "sqld_replication_log_bytes_total",
                "Bytes appended to the replication log (primary)",
            )
            .unwrap(),
            snapshots: IntCounter::new(
                "sqld_replication_snapshots_total",
                "Snapshots the log was folded into (primary)",
            )
            .unwrap(),
            frames_served: IntCounter::new(
                "sqld_replication_frames_served_total",
                "Frames sent to replicas (primary)",
            )
            .unwrap(),
            snapshots_served: IntCounter::new(
                "sqld_replication_snapshots_served_total",
                "Snapshots sent to bootstrapping replicas (primary)",
            )
            .unwrap(),
            replication_bytes_received: IntCounter::new(
                "sqld_replication_bytes_received_total",
                "Frame and snapshot bytes received from the primary (replica)",
            )
            .unwrap(),
            forwarded_statements: IntCounter::new(
                "sqld_forwarded_statements_total",
                "Statements forwarded to the primary (replica)",
            )
            .unwrap(),
            read_your_writes_waits: IntCounter::new(
                "sqld_read_your_writes_waits_total",
                "Reads that waited for the session's last write to arrive (replica)",
            )
            .unwrap(),
            backup_archived_frame_no: IntGauge::new(
                "sqld_backup_archived_frame_no",
                "The newest frame the backup store holds",
            )
            .unwrap(),
            backup_lag_frames: IntGauge::new(
                "sqld_backup_lag_frames",
                "Durable frames not yet uploaded to the backup store",
            )
            .unwrap(),
            backup_lag_seconds: Gauge::new(
                "sqld_backup_lag_seconds",
                "Age of the oldest durable commit not yet uploaded to the backup store",
            )
            .unwrap(),
            backup_bytes_uploaded: IntCounter::new(
                "sqld_backup_bytes_uploaded_total",
                "Compressed bytes uploaded to the backup store",
            )
            .unwrap(),
            backup_segments_uploaded: IntCounter::new(
                "sqld_backup_segments_uploaded_total",
                "Log segments uploaded to the backup store",
            )
            .unwrap(),
            backup_snapshots_uploaded: IntCounter::new(
                "sqld_backup_snapshots_uploaded_total",
                "Snapshots (generations) uploaded to the backup store",
            )
            .unwrap(),
            backup_upload_errors: IntCounter::new(
                "sqld_backup_upload_errors_total",
                "Failed requests to the backup store (each is retried)",
            )
            .unwrap(),
            backup_last_upload_timestamp: Gauge::new(
                "sqld_backup_last_upload_timestamp_seconds",
                "Unix time of the last successful upload to the backup store",
            )
            .unwrap(),
            backup_objects_deleted: IntCounter::new(
                "sqld_backup_objects_deleted_total",
                "Backup objects deleted by retention",
            )
            .unwrap(),
            unarchived_frames_dropped: IntCounter::new(
                "sqld_backup_unarchived_frames_dropped_total",
                "Frames compaction dropped before they were archived (the local bound was reached)",
            )
            .unwrap(),
            replication_bootstraps: IntCounter::new(
                "sqld_replication_bootstraps_total",
                "Times this replica loaded a snapshot from the primary",
            )
            .unwrap(),
            replication_backup_bootstraps: IntCounter::new(
                "sqld_replication_backup_bootstraps_total",
                "Times this replica built its database from the backup store (--bootstrap-from-backup)",
            )
            .unwrap(),
            replication_backup_bootstrap_fallbacks: IntCounterVec::new(
                Opts::new(
                    "sqld_replication_backup_bootstrap_fallbacks_total",
                    "Times --bootstrap-from-backup could not be used and the replica bootstrapped from the primary, by reason",
                ),
                &["reason"],
            )
            .unwrap(),
            replication_divergent_rejoins: IntCounter::new(
                "sqld_replication_divergent_rejoins_total",
                "Times this replica found frames a newly promoted primary never had, and bootstrapped again to discard them",
            )
            .unwrap(),
            sync_commits_waiting: IntGauge::new(
                "sqld_sync_commits_waiting",
                "Commits waiting for their synchronous replicas (--synchronous-replicas)",
            )
            .unwrap(),
            sync_commit_wait: Histogram::with_opts(
                HistogramOpts::new(
                    "sqld_sync_commit_wait_seconds",
                    "How long commits waited for their synchronous replicas",
                )
                .buckets(vec![
                    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
                    0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
            )
            .unwrap(),
            sync_commit_timeouts: IntCounter::new(
                "sqld_sync_commit_timeouts_total",
                "Commits whose synchronous replicas did not confirm them in time (committed on the primary only)",
            )
            .unwrap(),
            epoch: IntGauge::new(
                "sqld_epoch",
                "The epoch of the replication log this server writes or follows (one more at each promotion)",
            )
            .unwrap(),
            fenced: IntGauge::new(
                "sqld_fenced",
                "1 when this primary learned that a newer one was promoted and takes no more writes",
            )
            .unwrap(),
            replication_lag_seconds: Gauge::new(
                "sqld_replication_lag_seconds",
                "How long this replica has been behind the primary (0 when caught up)",
            )
            .unwrap(),
            replicas_connected: IntGauge::new(
                "sqld_replicas_connected",
                "Replicas that asked this primary for frames in the last 30 seconds",
            )
            .unwrap(),
            replication_frames_applied: IntCounter::new(
                "sqld_replication_frames_applied_total",
                "Frames applied by this replica",
            )
            .unwrap(),
        };
        for c in [
            Box::new(m.connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.connections_total.clone()),
            Box::new(m.connections_rejected.clone()),
            Box::new(m.connection_panics.clone()),
            Box::new(m.connections_authenticating.clone()),
            Box::new(m.statements.clone()),
            Box::new(m.errors.clone()),
            Box::new(m.statement_duration.clone()),
            Box::new(m.bytes_received.clone()),
            Box::new(m.bytes_sent.clone()),
            Box::new(m.database_size.clone()),
            Box::new(m.wal_size.clone()),
            Box::new(m.replication_frame_no.clone()),
            Box::new(m.replication_lag_frames.clone()),
            Box::new(m.replication_lag_seconds.clone()),
            Box::new(m.replicas_connected.clone()),
            Box::new(m.replication_frames_applied.clone()),
            Box::new(m.replication_bootstraps.clone()),
            Box::new(m.replication_backup_bootstraps.clone()),
            Box::new(m.replication_backup_bootstrap_fallbacks.clone()),
            Box::new(m.replication_divergent_rejoins.clone()),
            Box::new(m.epoch.clone()),
            Box::new(m.sync_commits_waiting.clone()),
            Box::new(m.sync_commit_wait.clone()),
            Box::new(m.sync_commit_timeouts.clone()),
            Box::new(m.fenced.clone()),
            Box::new(m.frames_logged.clone()),
            Box::new(m.log_bytes.clone()),
            Box::new(m.snapshots.clone()),
            Box::new(m.frames_served.clone()),
            Box::new(m.snapshots_served.clone()),
            Box::new(m.replication_bytes_received.clone()),
            Box::new(m.forwarded_statements.clone()),
            Box::new(m.read_your_writes_waits.clone()),
            Box::new(m.backup_archived_frame_no.clone()),
            Box::new(m.backup_lag_frames.clone()),
            Box::new(m.backup_lag_seconds.clone()),
            Box::new(m.backup_bytes_uploaded.clone()),
            Box::new(m.backup_segments_uploaded.clone()),
            Box::new(m.backup_snapshots_uploaded.clone()),
            Box::new(m.backup_upload_errors.clone()),
            Box::new(m.backup_last_upload_timestamp.clone()),
            Box::new(m.backup_objects_deleted.clone()),
            Box::new(m.unarchived_frames_dropped.clone()),
        ] {
            m.registry.register(c).expect("metric names are unique");
        }
        m
    }

    pub fn record_statement(&self, kind: &str, outcome: &str) {
        let kind = if kind.is_empty() { "other" } else { kind };
        self.statements.with_label_values(&[kind, outcome]).inc();
    }

    pub fn record_error(&self, kind: &str, class: &str) {
        self.statements.with_label_values(&[kind, "error"]).inc();
        self.errors.with_label_values(&[kind, class]).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encoding metrics to a Vec cannot fail");
        String::from_utf8(buf).expect("metrics text is UTF-8")
    }
}
