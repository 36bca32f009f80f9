//! `sqld promote`, `sqld follow` and `sqld status`: the admin API's client
//! (`replication::admin`), for a person or a script moving the primary.
//! Each asks for its change, then polls the status until the server serves
//! in its new role.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::config::{AdminTarget, FollowTarget, SwitchoverTarget};
use crate::replication::admin::{
    InstanceStatus, FOLLOW_PATH, HANDOVER_PATH, PROMOTE_PATH, STATUS_PATH,
};

const POLL: Duration = Duration::from_millis(100);

/// One server's admin API.
pub struct Admin {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Admin {
    pub fn new(target: &AdminTarget) -> anyhow::Result<Self> {
        let url = target.url.trim_end_matches('/').to_owned();
        let token = match &target.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => std::env::var("SQLD_REPLICATION_TOKEN").ok(),
        };
        let http = crate::replication::primary_client::build(&url, target.ca_file.as_deref())?;
        Ok(Admin { http, url, token })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .timeout(Duration::from_secs(10));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn status(&self) -> anyhow::Result<InstanceStatus> {
        let response = self
            .request(reqwest::Method::GET, STATUS_PATH)
            .send()
            .await?;
        Ok(checked(response).await?.json().await?)
    }

    async fn ask(&self, path: &str) -> anyhow::Result<InstanceStatus> {
        let response = self.request(reqwest::Method::POST, path).send().await?;
        Ok(checked(response).await?.json().await?)
    }

    /// Polls the status until `done` holds (the server restarts in between,
    /// so failed requests are retried), or the timeout.
    async fn wait(
        &self,
        timeout: Duration,
        done: impl Fn(&InstanceStatus) -> bool,
    ) -> anyhow::Result<InstanceStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.status().await {
                Ok(status) if done(&status) => return Ok(status),
                Ok(_) | Err(_) if Instant::now() < deadline => tokio::time::sleep(POLL).await,
                Ok(status) => bail!("not done within {timeout:?}: {status:?}"),
                Err(e) => return Err(e.context(format!("not done within {timeout:?}"))),
            }
        }
    }
}

async fn checked(response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    bail!("{status}: {}", body.trim())
}

fn print(status: &InstanceStatus) {
    println!(
        "{}",
        serde_json::to_string_pretty(status).expect("status serializes")
    );
}

pub async fn promote(target: &AdminTarget) -> anyhow::Result<()> {
    let after = Admin::new(target)?.promote(target.timeout).await?;
    print(&after);
    Ok(())
}

impl Admin {
    /// Promotes this replica and waits until it takes writes.
    pub async fn promote(&self, timeout: Duration) -> anyhow::Result<InstanceStatus> {
        let before = self.ask(PROMOTE_PATH).await?;
        self.wait(timeout, |s| {
            s.role == "primary" && !s.changing && s.epoch > before.epoch
        })
        .await
    }
}

pub async fn follow(follow: &FollowTarget) -> anyhow::Result<()> {
    let admin = Admin::new(&follow.target)?;
    let after = admin
        .follow(&follow.primary_url, follow.target.timeout)
        .await?;
    print(&after);
    Ok(())
}

impl Admin {
    /// Points this server at `primary` and waits until it follows it. A
    /// server already on its way there (a fenced primary told by the one
    /// that replaced it) is only waited for.
    pub async fn follow(&self, primary: &str, timeout: Duration) -> anyhow::Result<InstanceStatus> {
        let primary = primary.trim_end_matches('/').to_owned();
        let mut query = reqwest::Url::parse(&format!("http://query{FOLLOW_PATH}"))?;
        query.query_pairs_mut().append_pair("primary_url", &primary);
        let path = format!("{FOLLOW_PATH}?{}", query.query().unwrap_or_default());
        let follows = |s: &InstanceStatus| {
            s.role == "replica" && !s.changing && s.primary_url.as_deref() == Some(&primary)
        };
        let deadline = Instant::now() + timeout;
        loop {
            match self.status().await {
                Ok(status) if follows(&status) => return Ok(status),
                Ok(status) if !status.changing => {
                    let _ = self.ask(&path).await;
                }
                // Restarting in another role, or changing already.
                _ => {}
            }
            if Instant::now() >= deadline {
                bail!("{} does not follow {primary} within {timeout:?}", self.url);
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// A planned change of primary: the old one stops taking writes and lets
/// the running one finish, the target applies every frame, is promoted
/// (and fences the old one), and the old one follows it. Called off, with
/// the old primary taking writes again, if the target does not catch up.
pub async fn switchover(switch: &SwitchoverTarget) -> anyhow::Result<()> {
    let old = Admin::new(&switch.target)?;
    let new = Admin::new(&AdminTarget {
        url: switch.to.clone(),
        ..switch.target.clone()
    })?;
    let (primary, replica) = (old.status().await?, new.status().await?);
    if primary.role != "primary" || primary.fenced {
        bail!("{} is not a primary taking writes: {primary:?}", old.url);
    }
    if replica.role != "replica" || replica.log_id != primary.log_id {
        bail!("{} is not a replica of {}: {replica:?}", new.url, old.url);
    }
    let timeout = switch.target.timeout;
    let started = Instant::now();
    let drain_ms = switch.drain.as_millis();
    let handed = old
        .ask(&format!("{HANDOVER_PATH}?drain_ms={drain_ms}"))
        .await?;
    let promoted = async {
        new.wait(timeout, |s| {
            s.epoch == handed.epoch && s.frame_no >= handed.frame_no
        })
        .await?;
        new.ask(PROMOTE_PATH).await?;
        new.wait(timeout, |s| {
            s.role == "primary" && !s.changing && s.epoch > handed.epoch
        })
        .await
    }
    .await;
    let promoted = match promoted {
        Ok(status) => status,
        Err(e) => {
            let undone = old.ask(&format!("{HANDOVER_PATH}?cancel=true")).await;
            bail!("switchover called off ({e:#}); the old primary takes writes again: {undone:?}");
        }
    };
    let pause = started.elapsed();
    let demoted = old.follow(&new.url, timeout).await?;
    println!(
        "{}",
        serde_json::json!({
            "primary": promoted,
            "replica": demoted,
            "write_pause_ms": pause.as_millis() as u64,
        })
    );
    Ok(())
}

pub async fn status(target: &AdminTarget) -> anyhow::Result<()> {
    print(&Admin::new(target)?.status().await?);
    Ok(())
}
