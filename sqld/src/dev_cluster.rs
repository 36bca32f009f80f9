//! `sqld dev-cluster`: a primary and N replicas as local processes on
//! consecutive ports, for trying replication on a laptop. Each member is
//! this same binary with the flags the operator would give it. With
//! `--failover`, a small supervisor promotes the most advanced replica when
//! the primary's process dies (on Kubernetes, the operator decides).

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::config::{AdminTarget, DevCluster};
use crate::control::Admin;

/// Prints a line of the cluster's report; a closed stdout (its reader
/// gone) must not stop the cluster from stopping its members.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// How often the supervisor looks at the primary's process.
const WATCH: Duration = Duration::from_millis(100);
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

struct Member {
    name: String,
    db_path: PathBuf,
    pg: String,
    http: String,
    child: Child,
}

impl Member {
    fn start(
        exe: &std::path::Path,
        name: String,
        db_path: PathBuf,
        pg: String,
        http: String,
        primary_http: Option<&str>,
    ) -> anyhow::Result<Member> {
        let mut cmd = Command::new(exe);
        cmd.arg("--dev").arg("--db-path").arg(&db_path).args([
            "--pg-listen-addr",
            &pg,
            "--http-listen-addr",
            &http,
        ]);
        if let Some(primary) = primary_http {
            cmd.args(["--primary-url", &format!("http://{primary}")]);
        }
        let child = cmd.spawn()?;
        Ok(Member {
            name,
            db_path,
            pg,
            http,
            child,
        })
    }

    fn admin(&self) -> anyhow::Result<Admin> {
        Admin::new(&AdminTarget {
            url: format!("http://{}", self.http),
            token_file: None,
            ca_file: None,
            timeout: ADMIN_TIMEOUT,
        })
    }
}

/// Starts the members, prints where they are, and stops them all on
/// SIGINT or SIGTERM.
pub async fn run(cluster: DevCluster) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let primary_http = format!("127.0.0.1:{}", cluster.http_port);
    let mut members: Vec<Member> = Vec::new();
    for i in 0..=cluster.replicas {
        let name = if i == 0 {
            "primary".to_owned()
        } else {
            format!("replica-{i}")
        };
        let member = Member::start(
            &exe,
            name.clone(),
            cluster.db_path.join(&name),
            format!("127.0.0.1:{}", cluster.pg_port + i),
            format!("127.0.0.1:{}", cluster.http_port + i),
            (i > 0).then_some(primary_http.as_str()),
        )?;
        say!(
            "{name:<10} psql -h 127.0.0.1 -p {}   http://{}/ready   pid {}",
            cluster.pg_port + i,
            member.http,
            member.child.id()
        );
        members.push(member);
        if i == 0 {
            // Replicas bootstrap from the primary: let it come up first.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut primary = 0;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(WATCH) => {}
        }
        if !cluster.failover || !matches!(members[primary].child.try_wait(), Ok(Some(_))) {
            continue;
        }
        match fail_over(&exe, &mut members, primary).await {
            Ok(promoted) => primary = promoted,
            Err(e) => tracing::error!("failover failed: {e:#}; retrying"),
        }
    }
    // Replicas first, then the primary, each with SIGTERM for a clean stop.
    let mut order: Vec<usize> = (0..members.len()).filter(|i| *i != primary).collect();
    order.push(primary);
    for i in order {
        let member = &mut members[i];
        let _ = Command::new("kill")
            .arg(member.child.id().to_string())
            .status();
        let _ = member.child.wait();
        say!("stopped {}", member.name);
    }
    Ok(())
}

/// How long replicas' positions must stay still before they are compared.
const SETTLE: Duration = Duration::from_millis(50);

/// (member, (epoch, frame)) of every replica that answers.
async fn replica_positions(
    members: &[Member],
    dead: usize,
) -> anyhow::Result<Vec<(usize, (u64, u64))>> {
    let mut out = Vec::new();
    for (i, member) in members.iter().enumerate() {
        if i == dead {
            continue;
        }
        if let Ok(status) = member.admin()?.status().await {
            out.push((i, (status.epoch, status.frame_no)));
        }
    }
    Ok(out)
}

/// The primary `dead` exited: promotes the most advanced live replica,
/// points the others at it, and starts the old primary again on its
/// directory as a replica of the new one. Returns the new primary.
async fn fail_over(
    exe: &std::path::Path,
    members: &mut [Member],
    dead: usize,
) -> anyhow::Result<usize> {
    let started = Instant::now();
    // A replica may still be applying what it received before the primary
    // died: positions are compared once they stop moving.
    let mut positions = replica_positions(members, dead).await?;
    loop {
        tokio::time::sleep(SETTLE).await;
        let now = replica_positions(members, dead).await?;
        if now == positions {
            break;
        }
        positions = now;
    }
    let (promoted, (epoch, frame_no)) = positions
        .into_iter()
        .max_by_key(|(_, position)| *position)
        .ok_or_else(|| anyhow::anyhow!("no replica answers"))?;
    members[promoted].admin()?.promote(ADMIN_TIMEOUT).await?;
    let new_primary = members[promoted].http.clone();
    say!(
        "{} died: promoted {} (epoch {}, frame {frame_no}) in {:?}",
        members[dead].name,
        members[promoted].name,
        epoch + 1,
        started.elapsed()
    );
    let url = format!("http://{new_primary}");
    for (i, member) in members.iter().enumerate() {
        if i != dead && i != promoted {
            member.admin()?.follow(&url, ADMIN_TIMEOUT).await?;
        }
    }
    let old = &members[dead];
    let restarted = Member::start(
        exe,
        old.name.clone(),
        old.db_path.clone(),
        old.pg.clone(),
        old.http.clone(),
        Some(&new_primary),
    )?;
    say!(
        "{} restarted as a replica of {} (pid {})",
        restarted.name,
        members[promoted].name,
        restarted.child.id()
    );
    members[dead] = restarted;
    Ok(promoted)
}
