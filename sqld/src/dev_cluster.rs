//! `sqld dev-cluster`: a primary and N replicas as local processes on
//! consecutive ports, for trying replication on a laptop. Each member is
//! this same binary with the flags the operator would give it.

use std::process::{Child, Command};

use crate::config::DevCluster;

/// Starts the members, prints where they are, and stops them all on
/// SIGINT or SIGTERM.
pub async fn run(cluster: DevCluster) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let primary_http = format!("127.0.0.1:{}", cluster.http_port);
    let mut members: Vec<(String, Child)> = Vec::new();
    for i in 0..=cluster.replicas {
        let name = if i == 0 {
            "primary".to_owned()
        } else {
            format!("replica-{i}")
        };
        let pg = format!("127.0.0.1:{}", cluster.pg_port + i);
        let http = format!("127.0.0.1:{}", cluster.http_port + i);
        let mut cmd = Command::new(&exe);
        cmd.arg("--dev")
            .arg("--db-path")
            .arg(cluster.db_path.join(&name))
            .args(["--pg-listen-addr", &pg, "--http-listen-addr", &http]);
        if i > 0 {
            cmd.args(["--primary-url", &format!("http://{primary_http}")]);
        }
        let child = cmd.spawn()?;
        println!(
            "{name:<10} psql -h 127.0.0.1 -p {}   http://{http}/ready",
            cluster.pg_port + i
        );
        members.push((name, child));
        if i == 0 {
            // Replicas bootstrap from the primary: let it come up first.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    }
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    // Replicas first, then the primary, each with SIGTERM for a clean stop.
    for (name, child) in members.iter_mut().rev() {
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let _ = child.wait();
        println!("stopped {name}");
    }
    Ok(())
}
