//! The commands that read a backup: `sqld restore`, `sqld backup list`
//! and `sqld backup verify`. They print what they did on stdout, one fact
//! a line, for people and scripts alike.

use std::path::Path;

use anyhow::Context;

use super::inventory::{Inventory, Point};
use super::restore::{restore, Restored, Target};
use super::store::BackupStore;

/// `--to-time` (RFC 3339) or `--to-frame`, or the latest point.
pub fn target(to_time: Option<&str>, to_frame: Option<u64>) -> anyhow::Result<Target> {
    match (to_time, to_frame) {
        (Some(_), Some(_)) => anyhow::bail!("give --to-time or --to-frame, not both"),
        (Some(t), None) => {
            let time = chrono::DateTime::parse_from_rfc3339(t)
                .with_context(|| format!("--to-time {t:?} is not an RFC 3339 time"))?;
            let ms = u64::try_from(time.timestamp_millis()).context("--to-time before 1970")?;
            Ok(Target::Time(ms))
        }
        (None, Some(n)) => Ok(Target::Frame(n)),
        (None, None) => Ok(Target::Latest),
    }
}

pub async fn restore_command(
    url: &str,
    target: Target,
    log_id: Option<&str>,
    db_path: &Path,
) -> anyhow::Result<()> {
    let store = BackupStore::open(url)?;
    let restored = restore(&store, target, log_id, db_path).await?;
    print_restored(&restored, db_path);
    Ok(())
}

fn print_restored(r: &Restored, db_path: &Path) {
    let secs = r.elapsed.as_secs_f64();
    println!("restored {} from log {}", db_path.display(), r.log_id);
    println!("frame {}", r.frame_no);
    println!("time {}", format_ms(r.time_ms));
    println!("snapshot frame {}", r.snapshot_frame_no);
    println!("segments {}", r.segments);
    println!(
        "downloaded {} bytes in {:.2}s ({:.1} MB/s)",
        r.downloaded,
        secs,
        r.downloaded as f64 / 1e6 / secs.max(1e-6)
    );
    let p = &r.phases;
    println!(
        "snapshot {:.2}s (fsync {:.2}s), segments {:.2}s (waiting for downloads {:.2}s), checkpoint {:.2}s",
        p.snapshot.as_secs_f64(),
        p.snapshot_sync.as_secs_f64(),
        p.segments.as_secs_f64(),
        p.segments_waiting.as_secs_f64(),
        p.checkpoint.as_secs_f64()
    );
}

pub async fn list_command(url: &str) -> anyhow::Result<()> {
    let store = BackupStore::open(url)?;
    let inventory = Inventory::new(store.list().await?);
    if inventory.logs.is_empty() {
        println!("no backups at {url}");
    }
    for log in &inventory.logs {
        println!("log {}", log.log_id);
        for generation in log.generations() {
            println!(
                "  generation {}: {} to {} ({} segments)",
                generation.snapshot.frame_no,
                point(generation.first),
                point(generation.last),
                generation.segments.len()
            );
        }
    }
    Ok(())
}

fn point(p: Point) -> String {
    format!("frame {} at {}", p.frame_no, format_ms(p.time_ms))
}

fn format_ms(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// Restores the latest point into a temporary directory and checks it.
pub async fn verify_command(url: &str) -> anyhow::Result<()> {
    let store = BackupStore::open(url)?;
    let tmp = std::env::temp_dir().join(format!("sqld-verify-{}", uuid::Uuid::new_v4()));
    let result = verify(&store, &tmp).await;
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

async fn verify(store: &BackupStore, dir: &Path) -> anyhow::Result<()> {
    let restored = restore(store, Target::Latest, None, dir).await?;
    print_restored(&restored, dir);
    let conn = libsql_sys::rusqlite::Connection::open(dir.join("data.db"))?;
    let check: Vec<String> = conn
        .prepare("PRAGMA integrity_check")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if check != ["ok"] {
        anyhow::bail!("integrity check failed: {}", check.join("; "));
    }
    println!("integrity ok");
    Ok(())
}

/// `sqld restore ...`
pub async fn run_restore(args: &crate::config::Restore) -> anyhow::Result<()> {
    let target = target(args.to_time.as_deref(), args.to_frame)?;
    if args.if_empty && args.db_path.join(crate::database::DB_FILE).exists() {
        println!(
            "{} already holds a database; nothing restored",
            args.db_path.display()
        );
        return Ok(());
    }
    restore_command(&args.from, target, args.log_id.as_deref(), &args.db_path).await
}

/// `sqld backup ...`
pub async fn run_backup(command: &crate::config::BackupCommand) -> anyhow::Result<()> {
    match command {
        crate::config::BackupCommand::List { url } => list_command(url).await,
        crate::config::BackupCommand::Verify { url } => verify_command(url).await,
    }
}
