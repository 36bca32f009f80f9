//! Reads the primary's `/metrics` for its backup series. The operator's
//! pods may reach the `http` port (the cluster's NetworkPolicy admits
//! them), so this is a plain HTTP/1.0 GET to the pod's IP: one request a
//! reconcile, bounded by a timeout, with no client library for it.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Context;
use crate::backup_status::{parse_metrics, Scrape};

/// A scrape slower than this is reported as failed, not waited for.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);
/// sqld's metrics are a few kilobytes; more means something else answers.
const MAX_BODY: u64 = 1 << 20;

/// The primary's backup metrics, or why there are none.
pub async fn scrape(ctx: &Context, primary_ready: bool, pod: Option<&Pod>) -> Scrape {
    if !primary_ready {
        return Scrape::PrimaryNotReady;
    }
    let Some(ip) = pod
        .and_then(|p| p.status.as_ref())
        .and_then(|s| s.pod_ip.clone())
    else {
        return Scrape::Failed("the primary pod has no IP yet".to_string());
    };
    let addr = if ip.contains(':') {
        format!("[{ip}]:{}", ctx.sqld_http_port)
    } else {
        format!("{ip}:{}", ctx.sqld_http_port)
    };
    match tokio::time::timeout(SCRAPE_TIMEOUT, get_metrics(&addr)).await {
        Ok(Ok(text)) => Scrape::Metrics(parse_metrics(&text)),
        Ok(Err(e)) => Scrape::Failed(format!("GET http://{addr}/metrics: {e}")),
        Err(_) => Scrape::Failed(format!(
            "GET http://{addr}/metrics: no answer within {}s",
            SCRAPE_TIMEOUT.as_secs()
        )),
    }
}

async fn get_metrics(addr: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    // HTTP/1.0: the server closes the connection after the body.
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.take(MAX_BODY).read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP response"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(std::io::Error::other(format!("answered {status:?}")));
    }
    Ok(body.to_string())
}
