//! Backup and recovery without an API server: the primary's `--backup-*`
//! flags and AWS_* environment, the restore init container, validation of
//! the settings, and `BackupReady` / `status.backup` from the primary's
//! metrics.

mod fixtures;

use fixtures::{cluster, inputs, pod_spec, sqld};
use k8s_openapi::api::core::v1::{Container, EnvVar};
use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use sqld_operator::backup_status::{observe, parse_metrics, BackupMetrics, Scrape};
use sqld_operator::builders::{self, backup};
use sqld_operator::crd::{BackupStatus, SqldClusterStatus};
use sqld_operator::sqld_flags::RESTORE_FLAGS;
use sqld_operator::validation;

const BACKUP: &str = "backup: {destination: 's3://bucket/prod', interval: 2s, generationFrames: 5000, retention: 7d, credentials: {secretName: s3, endpoint: 'http://minio:9000', region: eu-west-1, allowHttp: true}}";

fn primary(spec: &str) -> k8s_openapi::api::apps::v1::StatefulSet {
    builders::statefulset::primary_statefulset(&cluster(spec), &inputs())
}

fn env_json(env: &[EnvVar]) -> serde_json::Value {
    serde_json::to_value(env).unwrap()
}

fn init_containers(spec: &str) -> Vec<Container> {
    pod_spec(&primary(spec).spec.template)
        .init_containers
        .clone()
        .unwrap_or_default()
}

fn reasons(spec: &str) -> Vec<&'static str> {
    validation::check(&cluster(spec))
        .into_iter()
        .map(|p| p.reason)
        .collect()
}

#[test]
fn the_primary_archives_with_the_flags_and_store_environment() {
    let sts = primary(BACKUP);
    let c = sqld(&sts.spec.template);
    let args = c.args.clone().unwrap();
    let i = args.iter().position(|a| a == "--backup-url").unwrap();
    assert_eq!(
        args[i..i + 8],
        [
            "--backup-url",
            "s3://bucket/prod",
            "--backup-interval",
            "2s",
            "--backup-generation-frames",
            "5000",
            "--backup-retention",
            "7d"
        ]
    );
    let env = env_json(c.env.as_ref().unwrap());
    let find = |n: &str| {
        env.as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("no {n}"))
    };
    assert_eq!(
        find("AWS_ACCESS_KEY_ID")["valueFrom"],
        json!({"secretKeyRef": {"name": "s3", "key": "accessKeyId", "optional": false}})
    );
    assert_eq!(
        find("AWS_SECRET_ACCESS_KEY")["valueFrom"],
        json!({"secretKeyRef": {"name": "s3", "key": "secretAccessKey", "optional": false}})
    );
    assert_eq!(find("AWS_ENDPOINT_URL")["value"], "http://minio:9000");
    assert_eq!(find("AWS_REGION")["value"], "eu-west-1");
    assert_eq!(find("AWS_ALLOW_HTTP")["value"], "true");
}

#[test]
fn only_the_primary_archives() {
    let c = cluster(&format!("{{replicas: 2, {BACKUP}}}"));
    let d = builders::deployment::replica_deployment(&c, &inputs());
    let replica = sqld(&d.spec.template);
    assert!(!replica
        .args
        .as_ref()
        .unwrap()
        .iter()
        .any(|a| a.starts_with("--backup")));
    assert!(!replica
        .env
        .as_ref()
        .unwrap()
        .iter()
        .any(|e| e.name.starts_with("AWS_")));
}

#[test]
fn without_settings_only_the_url_is_passed() {
    let sts = primary("backup: {destination: 'file:///var/lib/sqld/backup'}");
    let c = sqld(&sts.spec.template);
    let backup_args: Vec<_> = c
        .args
        .clone()
        .unwrap()
        .into_iter()
        .skip_while(|a| a != "--backup-url")
        .collect();
    assert_eq!(backup_args, ["--backup-url", "file:///var/lib/sqld/backup"]);
    assert!(!c
        .env
        .as_ref()
        .unwrap()
        .iter()
        .any(|e| e.name.starts_with("AWS_")));
    // No backup, no flags.
    let plain = primary("replicas: 0");
    assert!(!sqld(&plain.spec.template)
        .args
        .as_ref()
        .unwrap()
        .iter()
        .any(|a| a.starts_with("--backup")));
}

#[test]
fn recovery_restores_in_an_init_container_that_is_safe_to_rerun() {
    let spec = "bootstrap: {recovery: {source: 's3://old/prod', toTime: '2026-12-02T01:30:00Z', credentials: {secretName: old-s3, accessKeyIdKey: id, secretAccessKeyKey: key}}}";
    let init = init_containers(spec);
    assert_eq!(init.len(), 1);
    let r = &init[0];
    assert_eq!(r.name, backup::RESTORE_CONTAINER_NAME);
    assert_eq!(
        r.args.clone().unwrap(),
        [
            "restore",
            "--if-empty",
            "--from",
            "s3://old/prod",
            "--db-path",
            "/var/lib/sqld/db",
            "--to-time=2026-12-02T01:30:00Z"
        ]
    );
    // Every option is one `sqld restore` takes.
    for a in r
        .args
        .as_ref()
        .unwrap()
        .iter()
        .filter(|a| a.starts_with("--"))
    {
        let flag = a.split('=').next().unwrap();
        assert!(RESTORE_FLAGS.contains(&flag), "{a}");
    }
    let sts = primary(spec);
    let main = sqld(&sts.spec.template);
    assert_eq!(r.image, main.image);
    assert_eq!(r.security_context, main.security_context);
    let data = r
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "data")
        .expect("the data volume");
    assert_eq!(data.mount_path, "/var/lib/sqld");
    let env = env_json(r.env.as_ref().unwrap());
    assert_eq!(
        env,
        json!([
            {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "old-s3", "key": "id", "optional": false}}},
            {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": "old-s3", "key": "key", "optional": false}}}
        ])
    );
    // The main container does not archive into the source.
    assert!(!main
        .args
        .as_ref()
        .unwrap()
        .iter()
        .any(|a| a == "--backup-url"));
}

#[test]
fn recovery_to_a_frame_and_replicas_without_restore() {
    let spec = "{replicas: 1, bootstrap: {recovery: {source: 'file:///backups/a', toFrame: 42}}}";
    let args = init_containers(spec)[0].args.clone().unwrap();
    assert_eq!(args[args.len() - 2..], ["--to-frame", "42"]);
    let d = builders::deployment::replica_deployment(&cluster(spec), &inputs());
    assert!(pod_spec(&d.spec.template).init_containers.is_none());
    assert!(init_containers("replicas: 0").is_empty());
}

#[test]
fn bad_backup_and_recovery_settings_are_problems() {
    assert_eq!(
        reasons("backup: {destination: 'gs://bucket/x'}"),
        ["BackupDestinationInvalid"]
    );
    assert_eq!(
        reasons("backup: {destination: 's3://'}"),
        ["BackupDestinationInvalid"]
    );
    assert_eq!(
        reasons("backup: {destination: 's3://b', interval: 'soon', retention: '7 days'}"),
        ["BackupSettingInvalid", "BackupSettingInvalid"]
    );
    assert_eq!(
        reasons("backup: {destination: 's3://b', generationFrames: 0}"),
        ["BackupSettingInvalid"]
    );
    assert_eq!(
        reasons("{backup: {destination: 's3://b'}, extraArgs: ['--backup-retention=1d']}"),
        ["BackupSettingInvalid"]
    );
    assert_eq!(
        reasons("bootstrap: {recovery: {source: 'http://x'}}"),
        ["RecoverySourceInvalid"]
    );
    assert_eq!(
        reasons("bootstrap: {recovery: {source: 's3://b', toTime: 'yesterday'}}"),
        ["RecoveryTargetInvalid"]
    );
    assert_eq!(
        reasons(
            "bootstrap: {recovery: {source: 's3://b', toTime: '2026-12-02T01:30:00Z', toFrame: 3}}"
        ),
        ["RecoveryTargetInvalid"]
    );
    assert_eq!(
        reasons(
            "{backup: {destination: 's3://b/p/'}, bootstrap: {recovery: {source: 's3://b/p'}}}"
        ),
        ["RecoverySourceIsBackupDestination"]
    );
    assert!(reasons(&format!(
        "{{{BACKUP}, bootstrap: {{recovery: {{source: 's3://bucket/old', toFrame: 7}}}}}}"
    ))
    .is_empty());
}

#[test]
fn durations_as_sqld_reads_them() {
    assert_eq!(validation::duration_seconds("7d"), Some(604_800));
    assert_eq!(validation::duration_seconds("1h30m"), Some(5_400));
    assert_eq!(validation::duration_seconds("500ms"), Some(0));
    for bad in ["", "7", "d", "1x", "1h 30m", "-1s"] {
        assert_eq!(validation::duration_seconds(bad), None, "{bad}");
    }
}

const METRICS: &str = "# HELP sqld_backup_archived_frame_no The newest frame\n# TYPE sqld_backup_archived_frame_no gauge\nsqld_backup_archived_frame_no 1234\nsqld_backup_lag_frames 7\nsqld_backup_lag_seconds 0.5\nsqld_backup_upload_errors_total 2\nsqld_backup_last_upload_timestamp_seconds 1764638000.25\nsqld_pg_connections 3\n";

#[test]
fn backup_series_are_read_from_the_exposition() {
    assert_eq!(
        parse_metrics(METRICS),
        BackupMetrics {
            archived_frame_no: Some(1234),
            lag_frames: Some(7),
            lag_seconds: Some(0.5),
            last_upload_seconds: Some(1_764_638_000.25),
            upload_errors: Some(2.0),
        }
    );
    assert_eq!(
        parse_metrics("sqld_pg_connections 3\n"),
        BackupMetrics::default()
    );
}

fn now() -> Timestamp {
    Timestamp::from_second(1_764_640_000).unwrap()
}

#[test]
fn backup_ready_follows_the_primary_and_its_metrics() {
    let c = cluster("backup: {destination: 's3://b/p'}");
    let (state, _) = observe(&c, &Scrape::PrimaryNotReady, now());
    assert_eq!(
        (state.ready, state.reason.as_str()),
        (false, "PrimaryNotReady")
    );
    let (state, _) = observe(&c, &Scrape::Failed("refused".into()), now());
    assert_eq!(
        (state.ready, state.reason.as_str()),
        (false, "MetricsUnavailable")
    );
    assert!(state.message.contains("refused"));
    let (state, _) = observe(&c, &Scrape::Metrics(BackupMetrics::default()), now());
    assert_eq!(state.reason, "NotArchiving");

    let (state, status) = observe(&c, &Scrape::Metrics(parse_metrics(METRICS)), now());
    assert_eq!((state.ready, state.reason.as_str()), (true, "Archiving"));
    assert_eq!(status.last_archived_frame, Some(1234));
    assert_eq!(status.destination.as_deref(), Some("s3://b/p"));
    let last = status.last_successful_backup.clone().unwrap().0;
    assert_eq!(last.as_millisecond(), 1_764_638_000_250);
    assert_eq!(status.first_recoverability_point.unwrap().0, last);

    let lagging = METRICS.replace("sqld_backup_lag_seconds 0.5", "sqld_backup_lag_seconds 301");
    let (state, _) = observe(&c, &Scrape::Metrics(parse_metrics(&lagging)), now());
    assert_eq!(
        (state.ready, state.reason.as_str()),
        (false, "ArchiveLagging")
    );
    let never = "sqld_backup_archived_frame_no 0\nsqld_backup_last_upload_timestamp_seconds 0\n";
    let (state, status) = observe(&c, &Scrape::Metrics(parse_metrics(never)), now());
    assert_eq!(state.reason, "WaitingForFirstUpload");
    assert!(status.last_successful_backup.is_none());
}

fn with_backup_status(spec: &str, b: BackupStatus) -> sqld_operator::crd::SqldCluster {
    let mut c = cluster(spec);
    c.status = Some(SqldClusterStatus {
        backup: Some(b),
        ..SqldClusterStatus::default()
    });
    c
}

#[test]
fn the_first_recoverability_point_is_kept_moved_by_retention_and_reset_by_a_new_destination() {
    let first = Timestamp::from_second(1_764_000_000).unwrap();
    let old = BackupStatus {
        destination: Some("s3://b/p".into()),
        last_archived_frame: Some(10),
        last_successful_backup: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(first)),
        first_recoverability_point: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            first,
        )),
    };
    let scrape = Scrape::Metrics(parse_metrics(METRICS));
    let c = with_backup_status("backup: {destination: 's3://b/p'}", old.clone());
    let (_, s) = observe(&c, &scrape, now());
    assert_eq!(s.first_recoverability_point.unwrap().0, first, "kept");

    let c = with_backup_status(
        "backup: {destination: 's3://b/p', retention: 1d}",
        old.clone(),
    );
    let (_, s) = observe(&c, &scrape, now());
    assert_eq!(
        s.first_recoverability_point.unwrap().0.as_second(),
        now().as_second() - 86_400,
        "retention deleted what is older than a day"
    );

    let c = with_backup_status("backup: {destination: 's3://b/new'}", old.clone());
    let (_, s) = observe(&c, &scrape, now());
    assert_eq!(
        s.first_recoverability_point.unwrap().0.as_millisecond(),
        1_764_638_000_250,
        "a new destination starts over"
    );

    // A failed scrape keeps what was known.
    let c = with_backup_status("backup: {destination: 's3://b/p'}", old.clone());
    let (_, s) = observe(&c, &Scrape::Failed("x".into()), now());
    assert_eq!(s, old);
}
