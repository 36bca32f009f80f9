//! `sqld-chaos`: repeatable chaos rounds against real sqld processes on
//! loopback. Each round starts a fresh primary and replicas (`cluster`),
//! runs clients moving money through all of them (`workload`), injects
//! the round's fault, kills the primary with SIGKILL at a random moment
//! and restarts it, stops the load and checks every node (`check`): no
//! acknowledged commit lost, no transaction half visible, integrity ok,
//! every replica converged on the primary. It prints each round and the
//! totals, and exits non-zero unless everything held.
//!
//! Variants (every round also kills the primary):
//! - `primary-kill`: nothing more.
//! - `replica-kill`: a replica killed with SIGKILL, then restarted.
//! - `replica-stop`: a replica frozen with SIGSTOP for seconds, then
//!   SIGCONT.
//! - `disk-full`: the primary's RLIMIT_FSIZE lowered to just above the
//!   data in its largest file (writes fail as on a full disk: EFBIG, with SIGXFSZ
//!   ignored); it must keep running and serving reads; then the limit is
//!   lifted (the space returns) before the kill.
//!
//! A slow disk is not among them: slowing a file system's writes needs a
//! device-mapper delay target or a FUSE layer, which need mounts and
//! kernel modules this tool does not assume.
//!
//! Bounded: every wait has a timeout, each round a deadline, and the
//! processes and temporary directories are removed even when a round
//! fails or the run is interrupted.

mod check;
mod cluster;
mod rng;
mod workload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};

use crate::cluster::{Cluster, Node};
use crate::rng::Rng;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Variant {
    PrimaryKill,
    ReplicaKill,
    ReplicaStop,
    DiskFull,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::PrimaryKill => "primary-kill",
            Variant::ReplicaKill => "replica-kill",
            Variant::ReplicaStop => "replica-stop",
            Variant::DiskFull => "disk-full",
        }
    }
}

#[derive(Parser, Debug)]
#[command(about = "Chaos rounds against a real sqld primary and replicas on 127.0.0.1")]
struct Args {
    /// Number of rounds.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Variants, used in turn round after round (every round also kills
    /// the primary).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "disk-full,replica-stop,replica-kill,primary-kill"
    )]
    variants: Vec<Variant>,
    /// Seed of the fault schedule and the transfers (default: from the
    /// clock; printed, so a run can be repeated).
    #[arg(long)]
    seed: Option<u64>,
    /// The sqld binary (default: `sqld` beside this program).
    #[arg(long)]
    sqld: Option<PathBuf>,
    /// Concurrent clients, spread over the primary and the replicas.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Replicas per round.
    #[arg(long, default_value_t = 2)]
    replicas: usize,
    /// Deadline of one round, in seconds.
    #[arg(long, default_value_t = 120)]
    round_timeout: u64,
}

/// How much a file may still grow when the disk-full variant starts.
const DISK_HEADROOM: u64 = 64 * 1024;
/// How long the disk stays full, and how long after it is freed.
const FULL_FOR: Duration = Duration::from_millis(1500);
const FREED_FOR: Duration = Duration::from_millis(1000);
/// How long the load runs after the primary came back.
const AFTER_RESTART: Duration = Duration::from_millis(1500);

#[derive(Default)]
struct Figures {
    acknowledged: usize,
    failed: u64,
    causes: BTreeMap<String, u64>,
    lost: usize,
    torn: usize,
    divergent: usize,
    panics: usize,
    problems: Vec<String>,
}

impl Figures {
    fn ok(&self) -> bool {
        self.lost == 0
            && self.torn == 0
            && self.divergent == 0
            && self.panics == 0
            && self.problems.is_empty()
    }

    fn add(&mut self, other: &Figures) {
        self.acknowledged += other.acknowledged;
        self.failed += other.failed;
        for (cause, n) in &other.causes {
            *self.causes.entry(cause.clone()).or_default() += n;
        }
        self.lost += other.lost;
        self.torn += other.torn;
        self.divergent += other.divergent;
        self.panics += other.panics;
        self.problems.extend(other.problems.iter().cloned());
    }
}

fn sleep_blocking(f: impl FnOnce() -> Result<()>) -> Result<()> {
    // Starting a node waits for it synchronously; the clients' tasks go
    // on running on the other workers meanwhile.
    tokio::task::block_in_place(f)
}

/// Confirms a node still serves a read on a fresh connection.
async fn serves_reads(node: &Node) -> Result<()> {
    let (c, conn) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_postgres::connect(&node.conn_str(), tokio_postgres::NoTls),
    )
    .await
    .context("connect timed out")??;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    tokio::time::timeout(
        Duration::from_secs(5),
        c.query_one("SELECT count(*) FROM transfers", &[]),
    )
    .await
    .context("read timed out")??;
    Ok(())
}

async fn round(args: &Args, sqld: &Path, n: usize, variant: Variant, seed: u64) -> Result<Figures> {
    let mut rng = Rng::new(seed);
    let mut figures = Figures::default();
    let mut cluster = Cluster::start(sqld, args.replicas, &workload::schema()).await?;
    let nodes: Vec<String> = cluster.nodes().map(Node::conn_str).collect();
    let targets = (0..args.clients)
        .map(|i| nodes[i % nodes.len()].clone())
        .collect();
    let load = workload::start(n, targets, rng.next_u64());
    tokio::time::sleep(rng.millis(300, 1000)).await;

    match variant {
        Variant::PrimaryKill => {}
        Variant::ReplicaKill if !cluster.replicas.is_empty() => {
            let r = rng.below(cluster.replicas.len() as u64) as usize;
            cluster.replicas[r].kill9();
            tokio::time::sleep(rng.millis(200, 800)).await;
            sleep_blocking(|| cluster.replicas[r].restart())?;
        }
        Variant::ReplicaStop if !cluster.replicas.is_empty() => {
            let r = rng.below(cluster.replicas.len() as u64) as usize;
            cluster.replicas[r].stop()?;
            tokio::time::sleep(rng.millis(1500, 3000)).await;
            cluster.replicas[r].cont()?;
        }
        Variant::ReplicaKill | Variant::ReplicaStop => {}
        Variant::DiskFull => {
            let limit = cluster.primary.largest_data() + DISK_HEADROOM;
            cluster.primary.limit_file_size(Some(limit))?;
            tokio::time::sleep(FULL_FOR).await;
            // Writes fail, but cleanly: the server lives and serves reads.
            if !cluster.primary.alive() {
                figures
                    .problems
                    .push(format!("round {n}: the primary exited with a full disk"));
            } else if let Err(e) = serves_reads(&cluster.primary).await {
                figures
                    .problems
                    .push(format!("round {n}: no read served with a full disk: {e:#}"));
            }
            let full_failed = load
                .ledger
                .lock()
                .map(|l| format!("{} ({:?})", l.failed, l.causes))
                .unwrap_or_default();
            cluster.primary.limit_file_size(None)?;
            let freed = Instant::now();
            tokio::time::sleep(FREED_FOR).await;
            let resumed = load
                .ledger
                .lock()
                .map(|l| l.acked_since(freed))
                .unwrap_or(0);
            println!(
                "  disk full at {limit} bytes per file: {full_failed} transfers failed so far; \
                 {resumed} acknowledged within {FREED_FOR:?} of the space returning"
            );
        }
    }

    tokio::time::sleep(rng.millis(200, 800)).await;
    cluster.primary.kill9();
    tokio::time::sleep(rng.millis(100, 400)).await;
    sleep_blocking(|| cluster.primary.restart())?;
    let restarted = Instant::now();
    tokio::time::sleep(AFTER_RESTART).await;
    let ledger = load.stop().await;
    let (acked, after_restart) = {
        let l = ledger.lock().unwrap_or_else(|p| p.into_inner());
        figures.failed = l.failed;
        figures.causes = l.causes.clone();
        let ids: Vec<String> = l.acknowledged.iter().map(|(_, id)| id.clone()).collect();
        (ids, l.acked_since(restarted))
    };
    figures.acknowledged = acked.len();
    if after_restart == 0 {
        figures.problems.push(format!(
            "round {n}: no commit acknowledged after the primary restarted"
        ));
    }

    let verdicts = check::check(&cluster.primary, &cluster.replicas, &acked).await?;
    for v in &verdicts {
        if v.name == cluster.primary.name {
            figures.lost += v.lost;
        } else if v.lost > 0 && v.converged {
            // A converged replica missing a commit would mean the primary
            // misses it too, which is counted there.
            figures.problems.push(format!(
                "round {n}: {} lacks {} acknowledged commits",
                v.name, v.lost
            ));
        }
        figures.torn += v.torn;
        if !v.converged || !v.integrity_ok {
            figures.divergent += 1;
            figures.problems.push(format!(
                "round {n}: {} {}",
                v.name,
                if v.converged {
                    "fails PRAGMA integrity_check"
                } else {
                    "did not converge on the primary"
                }
            ));
        }
    }
    for node in cluster.nodes_mut() {
        let log = node.log_text();
        let panics = log.matches("panicked at").count();
        if panics > 0 {
            figures.panics += panics;
            figures.problems.push(format!(
                "round {n}: {} panicked:\n{}",
                node.name,
                tail(&log, 20)
            ));
        }
    }
    if !figures.ok() {
        for node in cluster.nodes() {
            eprintln!(
                "--- {} stderr (last lines)\n{}",
                node.name,
                tail(&node.log_text(), 20)
            );
        }
    }
    Ok(figures)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

async fn run(args: Args) -> Result<bool> {
    let sqld = match &args.sqld {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory for the current executable")?
            .join("sqld"),
    };
    if !sqld.is_file() {
        bail!(
            "no sqld binary at {} (build it: cargo build -p sqld, or pass --sqld)",
            sqld.display()
        );
    }
    if args.variants.is_empty() || args.rounds == 0 {
        bail!("nothing to run: give at least one round and one variant");
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let names: Vec<&str> = args.variants.iter().map(|v| v.name()).collect();
    println!(
        "sqld-chaos: {} rounds, variants {}, {} clients, {} replicas, seed {seed}",
        args.rounds,
        names.join(","),
        args.clients,
        args.replicas
    );
    let started = Instant::now();
    let mut total = Figures::default();
    let mut seeds = Rng::new(seed);
    for n in 1..=args.rounds {
        let variant = args.variants[(n - 1) % args.variants.len()];
        let round_seed = seeds.next_u64();
        let t = Instant::now();
        let deadline = Duration::from_secs(args.round_timeout);
        let figures =
            match tokio::time::timeout(deadline, round(&args, &sqld, n, variant, round_seed)).await
            {
                Ok(Ok(f)) => f,
                Ok(Err(e)) => Figures {
                    problems: vec![format!("round {n}: {e:#}")],
                    ..Figures::default()
                },
                Err(_) => Figures {
                    problems: vec![format!("round {n}: did not finish within {deadline:?}")],
                    ..Figures::default()
                },
            };
        println!(
            "round {n:>3} {:<13} acknowledged {:>5}  failed {:>4}  lost {}  torn {}  divergent {}  panics {}  {:.1}s  {}",
            variant.name(),
            figures.acknowledged,
            figures.failed,
            figures.lost,
            figures.torn,
            figures.divergent,
            figures.panics,
            t.elapsed().as_secs_f64(),
            if figures.ok() { "ok" } else { "FAILED" }
        );
        for p in &figures.problems {
            println!("  {p}");
        }
        total.add(&figures);
    }
    let causes: Vec<String> = total
        .causes
        .iter()
        .map(|(c, n)| format!("{c} x{n}"))
        .collect();
    println!("failed transfers by cause: {}", causes.join(", "));
    println!(
        "total: rounds {}, commits acknowledged {}, failed {}, lost {}, torn {}, divergent {}, panics {}, {:.1}s, seed {seed}",
        args.rounds,
        total.acknowledged,
        total.failed,
        total.lost,
        total.torn,
        total.divergent,
        total.panics,
        started.elapsed().as_secs_f64()
    );
    Ok(total.ok())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sqld-chaos: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = run(args) => r,
            // Dropping the run drops its cluster: processes killed,
            // directories removed.
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("sqld-chaos: {e:#}");
            ExitCode::FAILURE
        }
    }
}
