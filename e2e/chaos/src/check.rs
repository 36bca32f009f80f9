//! The checks after a round, on every node once the load has stopped:
//! the acknowledged transfers are all there (lost: any missing), each
//! account's balance is what the recorded transfers make it (torn: any
//! account off, i.e. a transaction visible in part), `PRAGMA
//! integrity_check` says ok, and every replica converges on the primary's
//! content (per-table checksums equal within a bounded wait; divergent:
//! a replica that does not).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cluster::Node;
use crate::workload::{ACCOUNTS, INITIAL_BALANCE};

/// How long replicas get to catch up with the primary.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// What one node holds.
pub struct Snapshot {
    pub transfers: HashSet<String>,
    /// Accounts whose balance disagrees with the transfers recorded.
    pub torn: usize,
    pub integrity: String,
    /// Checksum of each table's rows in key order.
    pub checksums: Vec<(&'static str, u64, usize)>,
}

/// FNV-1a, enough to compare table contents across nodes.
fn fnv(hash: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *hash ^= u64::from(*b);
        *hash = hash.wrapping_mul(0x100_0000_01b3);
    }
}

async fn connect(node: &Node) -> Result<tokio_postgres::Client> {
    let (client, conn) = tokio::time::timeout(
        QUERY_TIMEOUT,
        tokio_postgres::connect(&node.conn_str(), tokio_postgres::NoTls),
    )
    .await
    .with_context(|| format!("connecting to {} timed out", node.name))?
    .with_context(|| format!("connecting to {}", node.name))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Reads a node's tables in one read transaction (a consistent view).
pub async fn snapshot(node: &Node) -> Result<Snapshot> {
    let c = connect(node).await?;
    let read = async {
        c.batch_execute("BEGIN").await?;
        let accounts = c
            .query("SELECT id, balance FROM accounts ORDER BY id", &[])
            .await?;
        let transfers = c
            .query(
                "SELECT id, src, dst, amount FROM transfers ORDER BY id",
                &[],
            )
            .await?;
        c.batch_execute("COMMIT").await?;
        let integrity: String = c.query_one("PRAGMA integrity_check", &[]).await?.get(0);
        Ok::<_, tokio_postgres::Error>((accounts, transfers, integrity))
    };
    let (accounts, transfers, integrity) = tokio::time::timeout(QUERY_TIMEOUT, read)
        .await
        .with_context(|| format!("reading {} timed out", node.name))?
        .with_context(|| format!("reading {}", node.name))?;

    let mut expected: HashMap<i64, i64> = (0..ACCOUNTS).map(|i| (i, INITIAL_BALANCE)).collect();
    let mut ids = HashSet::new();
    let mut t_hash = 0xcbf2_9ce4_8422_2325u64;
    for row in &transfers {
        let (id, src, dst, amount): (String, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        fnv(
            &mut t_hash,
            format!("{id},{src},{dst},{amount};").as_bytes(),
        );
        *expected.entry(src).or_default() -= amount;
        *expected.entry(dst).or_default() += amount;
        ids.insert(id);
    }
    let mut a_hash = 0xcbf2_9ce4_8422_2325u64;
    let mut torn = 0;
    let mut seen = 0;
    for row in &accounts {
        let (id, balance): (i64, i64) = (row.get(0), row.get(1));
        fnv(&mut a_hash, format!("{id},{balance};").as_bytes());
        if expected.get(&id) != Some(&balance) {
            torn += 1;
        }
        seen += 1;
    }
    // A missing account row is as wrong as a wrong balance.
    torn += (ACCOUNTS as usize).saturating_sub(seen);
    Ok(Snapshot {
        transfers: ids,
        torn,
        integrity,
        checksums: vec![
            ("accounts", a_hash, accounts.len()),
            ("transfers", t_hash, transfers.len()),
        ],
    })
}

/// A node's verdict.
pub struct Verdict {
    pub name: String,
    pub lost: usize,
    pub torn: usize,
    pub integrity_ok: bool,
    pub converged: bool,
}

/// Checks the primary against the acknowledged ids, then waits for each
/// replica to hold exactly the primary's content and checks it the same
/// way.
pub async fn check(primary: &Node, replicas: &[Node], acked: &[String]) -> Result<Vec<Verdict>> {
    let p = snapshot(primary).await?;
    let lost_in = |s: &Snapshot| acked.iter().filter(|id| !s.transfers.contains(*id)).count();
    let mut verdicts = vec![Verdict {
        name: primary.name.clone(),
        lost: lost_in(&p),
        torn: p.torn,
        integrity_ok: p.integrity == "ok",
        converged: true,
    }];
    for r in replicas {
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        let mut last = None;
        while Instant::now() < deadline {
            match snapshot(r).await {
                Ok(s) if s.checksums == p.checksums => {
                    last = Some(s);
                    break;
                }
                Ok(s) => last = Some(s),
                Err(e) => eprintln!("  {}: {e:#}", r.name),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let verdict = match last {
            Some(s) => Verdict {
                name: r.name.clone(),
                lost: lost_in(&s),
                torn: s.torn,
                integrity_ok: s.integrity == "ok",
                converged: s.checksums == p.checksums,
            },
            None => Verdict {
                name: r.name.clone(),
                lost: acked.len(),
                torn: 0,
                integrity_ok: false,
                converged: false,
            },
        };
        verdicts.push(verdict);
    }
    Ok(verdicts)
}
