//! Backup and recovery against the fake API server: bad settings and
//! missing Secrets become conditions and Events (and nothing is removed),
//! good ones reach the primary, and `status.backup` comes from the
//! primary's `/metrics`.

mod fake;
mod fixtures;

use std::sync::Arc;

use fake::scenario::*;
use fake::FakeApi;
use serde_json::json;
use sqld_operator::controller::Context;
use sqld_operator::metrics::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const S3_SECRET: &str = "/api/v1/namespaces/prod/secrets/s3";

fn put_s3_secret(fake: &FakeApi, data: serde_json::Value) {
    fake.put(
        S3_SECRET,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3"}, "data": data}),
    );
}

fn warned(fake: &FakeApi, reason: &str) -> bool {
    fake.events().contains(&("Warning".into(), reason.into()))
}

fn primary_args(fake: &FakeApi) -> Vec<String> {
    serde_json::from_value(
        fake.get(STS).unwrap()["spec"]["template"]["spec"]["containers"][0]["args"].clone(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_bad_destination_is_reported_and_the_running_cluster_kept() {
    let (fake, ctx) = setup("replicas: 0");
    run(&fake, &ctx).await;
    assert!(fake.get(STS).is_some());
    let before = fake.get(STS).unwrap()["spec"].clone();

    edit_spec(&fake, |s| {
        s["backup"] = json!({"destination": "gs://bucket/prod"})
    });
    run(&fake, &ctx).await;
    let ready = condition(&fake, "Ready");
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("BackupDestinationInvalid"))
    );
    let backup = condition(&fake, "BackupReady");
    assert_eq!(backup["status"], "False");
    assert_eq!(backup["reason"], "BackupDestinationInvalid");
    assert!(backup["message"]
        .as_str()
        .unwrap()
        .contains("gs://bucket/prod"));
    assert!(warned(&fake, "BackupDestinationInvalid"));
    // Nothing deleted, nothing changed.
    assert_eq!(fake.get(STS).unwrap()["spec"], before);
    assert!(
        !fake.writes().iter().any(|w| w.starts_with("DELETE")),
        "{:?}",
        fake.writes()
    );
}

#[tokio::test]
async fn a_missing_secret_or_key_is_reported_until_it_is_there() {
    let (fake, ctx) =
        setup("backup: {destination: 's3://bucket/prod', credentials: {secretName: s3}}");
    run(&fake, &ctx).await;
    assert_eq!(
        condition(&fake, "BackupReady")["reason"],
        "BackupSecretNotFound"
    );
    assert_eq!(condition(&fake, "Ready")["reason"], "BackupSecretNotFound");
    assert!(warned(&fake, "BackupSecretNotFound"));
    assert!(
        fake.get(STS).is_none(),
        "no primary that would start without its credentials"
    );

    put_s3_secret(&fake, json!({"accessKeyId": "aWQ="}));
    run(&fake, &ctx).await;
    let cond = condition(&fake, "BackupReady");
    assert_eq!(cond["reason"], "BackupSecretIncomplete");
    assert!(cond["message"]
        .as_str()
        .unwrap()
        .contains("secretAccessKey"));

    put_s3_secret(
        &fake,
        json!({"accessKeyId": "aWQ=", "secretAccessKey": "a2V5"}),
    );
    run(&fake, &ctx).await;
    assert!(primary_args(&fake).contains(&"s3://bucket/prod".to_string()));
    assert_eq!(condition(&fake, "BackupReady")["reason"], "PrimaryNotReady");

    // Rotating the keys rolls the primary (it reads them at start).
    let hash = |f: &FakeApi| {
        f.get(STS).unwrap()["spec"]["template"]["metadata"]["annotations"]["sqld.dev/config-hash"]
            .clone()
    };
    let before = hash(&fake);
    put_s3_secret(
        &fake,
        json!({"accessKeyId": "aWQ=", "secretAccessKey": "bmV3"}),
    );
    run(&fake, &ctx).await;
    assert_ne!(hash(&fake), before);
}

#[tokio::test]
async fn recovery_into_its_own_backup_destination_is_refused() {
    let (fake, ctx) = setup("{backup: {destination: 's3://bucket/prod'}, bootstrap: {recovery: {source: 's3://bucket/prod/'}}}");
    run(&fake, &ctx).await;
    assert_eq!(
        condition(&fake, "Ready")["reason"],
        "RecoverySourceIsBackupDestination"
    );
    assert_eq!(
        condition(&fake, "BackupReady")["reason"],
        "RecoverySourceIsBackupDestination"
    );
    assert!(warned(&fake, "RecoverySourceIsBackupDestination"));
    assert!(fake.get(STS).is_none());
}

#[tokio::test]
async fn a_missing_recovery_secret_is_reported_and_a_present_one_restores() {
    let (fake, ctx) =
        setup("bootstrap: {recovery: {source: 's3://old/prod', credentials: {secretName: s3}}}");
    run(&fake, &ctx).await;
    assert_eq!(
        condition(&fake, "Ready")["reason"],
        "RecoverySecretNotFound"
    );
    assert!(warned(&fake, "RecoverySecretNotFound"));
    put_s3_secret(
        &fake,
        json!({"accessKeyId": "aWQ=", "secretAccessKey": "a2V5"}),
    );
    run(&fake, &ctx).await;
    let init = fake.get(STS).unwrap()["spec"]["template"]["spec"]["initContainers"].clone();
    assert_eq!(init[0]["args"][0], "restore");
    assert_eq!(init[0]["args"][1], "--if-empty");
}

/// Serves `body` as sqld's `/metrics` on a loopback port, once per connection.
async fn metrics_server(body: &'static str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let reply = if request.starts_with("GET /metrics ") {
                format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n{body}")
            } else {
                "HTTP/1.0 404 Not Found\r\n\r\n".to_string()
            };
            let _ = s.write_all(reply.as_bytes()).await;
        }
    });
    port
}

fn setup_with_port(spec: &str, port: u16) -> (FakeApi, Arc<Context>) {
    let (fake, _) = setup(spec);
    let mut ctx = Context::new(fake.client(), Metrics::new(), None);
    ctx.sqld_http_port = port;
    (fake, Arc::new(ctx))
}

#[tokio::test]
async fn status_backup_comes_from_the_primarys_metrics() {
    let port = metrics_server("sqld_backup_archived_frame_no 4321\nsqld_backup_lag_frames 3\nsqld_backup_lag_seconds 0.2\nsqld_backup_upload_errors_total 0\nsqld_backup_last_upload_timestamp_seconds 1764638000\n").await;
    let (fake, ctx) = setup_with_port("backup: {destination: 'file:///var/lib/sqld/backup'}", port);
    run(&fake, &ctx).await;
    children_ready(&fake);
    fake.edit(PRIMARY_POD, |p| p["status"]["podIP"] = json!("127.0.0.1"));
    run(&fake, &ctx).await;
    let cond = condition(&fake, "BackupReady");
    assert_eq!(
        (cond["status"].as_str(), cond["reason"].as_str()),
        (Some("True"), Some("Archiving")),
        "{cond}"
    );
    let status = fake.get(CLUSTER).unwrap()["status"]["backup"].clone();
    assert_eq!(status["lastArchivedFrame"], 4321);
    assert_eq!(status["lastSuccessfulBackup"], "2025-12-02T01:13:20Z");
    assert_eq!(status["firstRecoverabilityPoint"], "2025-12-02T01:13:20Z");
    assert_eq!(status["destination"], "file:///var/lib/sqld/backup");
    // Backup does not hold Ready back, and Ready does not hide it.
    assert_eq!(condition(&fake, "Ready")["status"], "True");
}

#[tokio::test]
async fn an_unreachable_primary_keeps_the_last_backup_status() {
    let port = metrics_server("sqld_backup_archived_frame_no 10\nsqld_backup_lag_seconds 0\nsqld_backup_last_upload_timestamp_seconds 1764638000\n").await;
    let (fake, ctx) = setup_with_port("backup: {destination: 's3://b/p'}", port);
    run(&fake, &ctx).await;
    children_ready(&fake);
    fake.edit(PRIMARY_POD, |p| p["status"]["podIP"] = json!("127.0.0.1"));
    run(&fake, &ctx).await;
    assert_eq!(condition(&fake, "BackupReady")["status"], "True");

    // Nothing listens on this port any more.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut ctx2 = Context::new(fake.client(), Metrics::new(), None);
    ctx2.sqld_http_port = closed;
    run(&fake, &Arc::new(ctx2)).await;
    let cond = condition(&fake, "BackupReady");
    assert_eq!(
        (cond["status"].as_str(), cond["reason"].as_str()),
        (Some("False"), Some("MetricsUnavailable"))
    );
    assert_eq!(
        fake.get(CLUSTER).unwrap()["status"]["backup"]["lastArchivedFrame"],
        10
    );
}
