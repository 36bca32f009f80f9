//! The command line. Every flag also reads an `SQLD_*` environment
//! variable; the flags are a contract the operator and tests rely on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMethod {
    /// Anyone who can connect is let in (local development only).
    Trust,
    /// SCRAM-SHA-256, as Postgres does by default.
    Password,
    /// The password in clear text (use only with TLS).
    Cleartext,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// sqld: a server for the SQLite dialect that speaks the PostgreSQL wire
/// protocol.
#[derive(Debug, Clone, Parser)]
#[command(name = "sqld", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Directory holding the database (created if missing).
    #[arg(long, env = "SQLD_DB_PATH", default_value = "sqld-data")]
    pub db_path: PathBuf,

    /// Address of the PostgreSQL protocol listener.
    #[arg(long, env = "SQLD_PG_LISTEN_ADDR", default_value = "127.0.0.1:5432")]
    pub pg_listen_addr: SocketAddr,

    /// Address of the HTTP listener (/health, /ready, /metrics).
    #[arg(long, env = "SQLD_HTTP_LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub http_listen_addr: SocketAddr,

    /// Serve the internal API (replication, forwarded writes) on this
    /// address instead of the HTTP listener; it speaks TLS when
    /// --tls-cert/--tls-key are set. /health, /ready and /metrics stay on
    /// the HTTP listener.
    #[arg(long, env = "SQLD_INTERNAL_LISTEN_ADDR")]
    pub internal_listen_addr: Option<SocketAddr>,

    /// Client authentication. Defaults to `password` (SCRAM-SHA-256), or
    /// `trust` with --dev.
    #[arg(long, env = "SQLD_AUTH", value_enum)]
    pub auth: Option<AuthMethod>,

    /// Development mode: trust authentication unless --auth says otherwise.
    #[arg(long, env = "SQLD_DEV")]
    pub dev: bool,

    /// File of `user:password` lines.
    #[arg(long, env = "SQLD_USERS_FILE")]
    pub users_file: Option<PathBuf>,

    /// Password of the user named by --user (an alternative to
    /// --users-file). Prefer SQLD_PASSWORD or --users-file: any local user
    /// can read a command line (ps, /proc/<pid>/cmdline).
    #[arg(long, env = "SQLD_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,

    /// User name that SQLD_PASSWORD applies to.
    #[arg(long, env = "SQLD_USER", default_value = "sqld")]
    pub user: String,

    /// TLS certificate chain (PEM); enables TLS together with --tls-key.
    #[arg(long, env = "SQLD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM).
    #[arg(long, env = "SQLD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Authenticated sessions beyond this are refused with SQLSTATE 53300.
    /// Connections still authenticating are not counted here but against
    /// --max-authenticating.
    #[arg(long, env = "SQLD_MAX_CONNECTIONS", default_value_t = 128)]
    pub max_connections: usize,

    /// Connections, from all addresses together, that may be open before
    /// they have authenticated; beyond it new ones are refused at once
    /// (53300), so connections that never finish their startup cannot lock
    /// out authenticated sessions.
    #[arg(long, env = "SQLD_MAX_AUTHENTICATING", default_value_t = 64)]
    pub max_authenticating: usize,

    /// Connections one client address may have open before they have
    /// authenticated; beyond it new ones are refused at once (53300), so
    /// a client that never finishes its startup cannot fill
    /// --max-connections for everyone.
    #[arg(
        long,
        env = "SQLD_MAX_AUTHENTICATING_PER_ADDRESS",
        default_value_t = 32
    )]
    pub max_authenticating_per_address: usize,

    /// Largest protocol message accepted from a client, in bytes.
    #[arg(long, env = "SQLD_MAX_MESSAGE_SIZE", default_value_t = 64 * 1024 * 1024)]
    pub max_message_size: usize,

    /// Largest result set kept for one statement, in bytes of values.
    #[arg(long, env = "SQLD_MAX_RESULT_SIZE", default_value_t = 256 * 1024 * 1024)]
    pub max_result_size: usize,

    /// Statements running longer are interrupted (57014); 0 disables.
    #[arg(long, env = "SQLD_STATEMENT_TIMEOUT", default_value = "0s", value_parser = humantime::parse_duration)]
    pub statement_timeout: Duration,

    /// Sessions idle inside a transaction longer are closed (25P03); 0
    /// disables. On by default, unlike Postgres: SQLite has one writer, so
    /// one client idle in a write transaction would stop every other
    /// writer.
    #[arg(long, env = "SQLD_IDLE_IN_TRANSACTION_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_in_transaction_timeout: Duration,

    /// A transaction that has held the write lock this long is rolled back
    /// at its next statement, or interrupted in the one it runs (25P04); 0
    /// disables.
    #[arg(long, env = "SQLD_WRITE_TRANSACTION_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub write_transaction_timeout: Duration,

    /// Time a client has to finish TLS negotiation and authentication.
    #[arg(long, env = "SQLD_STARTUP_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub startup_timeout: Duration,

    /// A client that takes none of the bytes the server has for it (a
    /// reply, result rows) for this long is disconnected, its transaction
    /// rolled back: a client that stops reading must not keep the write
    /// lock, or a connection, forever. 0 disables.
    #[arg(long, env = "SQLD_CLIENT_WRITE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub client_write_timeout: Duration,

    /// How long a writer waits for the write lock before failing (55P03).
    #[arg(long, env = "SQLD_BUSY_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub busy_timeout: Duration,

    /// On SIGTERM, how long running statements get to finish.
    #[arg(long, env = "SQLD_SHUTDOWN_GRACE_PERIOD", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace_period: Duration,

    /// Run as a replica of the primary whose HTTP listener is at this URL
    /// (e.g. http://primary:8080): bootstrap from it, apply its frames,
    /// serve reads, forward writes to it.
    #[arg(long, env = "SQLD_PRIMARY_URL")]
    pub primary_url: Option<String>,

    /// CA certificates (PEM) that an https --primary-url's certificate must
    /// be signed by (required for https; system roots are not trusted).
    #[arg(long, env = "SQLD_PRIMARY_CA_FILE")]
    pub primary_ca_file: Option<PathBuf>,

    /// A replica reports not ready (/ready) while it is more than this many
    /// frames behind the primary.
    #[arg(long, env = "SQLD_MAX_REPLICA_LAG_FRAMES", default_value_t = 10_000)]
    pub max_replica_lag_frames: u64,

    /// This server's internal API as the others reach it. A replica
    /// promoted over a primary gives it to that primary, which follows it
    /// once fenced. Default: the internal (else HTTP) listener's address,
    /// when that is a specific one (not 0.0.0.0).
    #[arg(long, env = "SQLD_ADVERTISE_URL")]
    pub advertise_url: Option<String>,

    /// On a primary: acknowledge a commit only once this many replicas
    /// hold it durably (0: asynchronous replication). With 1 or more, a
    /// promotion of the most advanced replica loses no acknowledged commit.
    /// A session can opt out with `SET synchronous_commit = off`.
    #[arg(long, env = "SQLD_SYNCHRONOUS_REPLICAS", default_value_t = 0)]
    pub synchronous_replicas: usize,

    /// How long a commit waits for its synchronous replicas before it fails
    /// (it stays committed on the primary, unconfirmed by replicas).
    #[arg(long, env = "SQLD_SYNCHRONOUS_COMMIT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub synchronous_commit_timeout: Duration,

    /// On a primary: refuse writes (25006) once no replica and no
    /// orchestrator has reached it for this long, so a primary cut off by a
    /// partition stops acknowledging writes a failover would discard; it
    /// takes them again when contact returns. Off by default; only for a
    /// primary with replicas.
    #[arg(long, env = "SQLD_FENCE_AFTER", value_parser = humantime::parse_duration)]
    pub fence_after: Option<Duration>,

    /// Shared secret for the internal replication endpoints: replicas send
    /// it as a bearer token, the primary requires it. Without it (and
    /// without --replication-token-file) a primary listening on loopback
    /// generates one in <db-path>/replication-token; only --dev runs the
    /// endpoints open. Prefer SQLD_REPLICATION_TOKEN or
    /// --replication-token-file: any local user can read a command line
    /// (ps, /proc/<pid>/cmdline).
    #[arg(long, env = "SQLD_REPLICATION_TOKEN", hide_env_values = true)]
    pub replication_token: Option<String>,

    /// File holding the replication token (e.g. a mounted Secret, or a
    /// local primary's <db-path>/replication-token).
    #[arg(
        long,
        env = "SQLD_REPLICATION_TOKEN_FILE",
        conflicts_with = "replication_token"
    )]
    pub replication_token_file: Option<PathBuf>,

    /// Fold the replication log into a new snapshot once it holds this many
    /// frames (4 KiB each) past the last one.
    #[arg(long, env = "SQLD_SNAPSHOT_THRESHOLD_FRAMES", default_value_t = 25_000)]
    pub snapshot_threshold_frames: u64,

    /// Continuously back up the primary to this store: s3://bucket/prefix
    /// (any S3-compatible store; endpoint and credentials from
    /// AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION, AWS_ALLOW_HTTP), gs://bucket/prefix (GOOGLE_*
    /// variables), az://container/prefix (AZURE_* variables) or
    /// file:///path.
    #[arg(long, env = "SQLD_BACKUP_URL")]
    pub backup_url: Option<String>,

    /// Upload committed frames at least this often.
    #[arg(long, env = "SQLD_BACKUP_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub backup_interval: Duration,

    /// Upload as soon as this many bytes of frames are waiting.
    #[arg(long, env = "SQLD_BACKUP_SEGMENT_SIZE", default_value_t = 16 * 1024 * 1024)]
    pub backup_segment_size: u64,

    /// Start a new backup generation (upload a snapshot) after this many
    /// frames.
    #[arg(long, env = "SQLD_BACKUP_GENERATION_FRAMES", default_value_t = 100_000)]
    pub backup_generation_frames: u64,

    /// Delete backup generations no longer needed to restore to any point
    /// this far back (e.g. 7d); unset keeps everything.
    #[arg(long, env = "SQLD_BACKUP_RETENTION", value_parser = humantime::parse_duration)]
    pub backup_retention: Option<Duration>,

    /// Frames not yet archived that the local log keeps through
    /// compaction while the store is unreachable; past it they are dropped
    /// (with an error) and the backup resumes at the next snapshot.
    #[arg(
        long,
        env = "SQLD_BACKUP_MAX_LOCAL_FRAMES",
        default_value_t = 1_000_000
    )]
    pub backup_max_local_frames: u64,

    /// On a replica with no database yet: rebuild it from the primary's
    /// backup in this store (as --backup-url) instead of downloading the
    /// primary's snapshot, then follow the primary from there. Falls back
    /// to the primary's snapshot (with a warning) when the store holds no
    /// restorable point that continues the primary's current log.
    #[arg(long, env = "SQLD_BOOTSTRAP_FROM_BACKUP")]
    pub bootstrap_from_backup: Option<String>,

    /// Log format.
    #[arg(long, env = "SQLD_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Start a primary and N replicas on this machine, on consecutive
    /// ports, with trust authentication on loopback: the local stand-in
    /// for what the operator runs.
    DevCluster(DevCluster),
    /// Rebuild a database from a backup, at its latest point or at a
    /// committed point in the past; `sqld --db-path DIR` then starts a new
    /// primary (with a new log id) on it.
    Restore(Restore),
    /// Inspect a backup store.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Make the replica at --url the primary, in a new epoch, and wait
    /// until it takes writes; the primary it followed is told to fence
    /// itself.
    Promote(AdminTarget),
    /// Make the server at --url (a replica, or a primary that was replaced)
    /// follow the primary at --primary-url, and wait until it does.
    Follow(FollowTarget),
    /// Print the role, epoch and frame position of the server at --url.
    Status(AdminTarget),
    /// Hand the primary role from the primary at --url to its replica at
    /// --to, losing no acknowledged commit: writes pause (new ones get
    /// 25006) until the replica has every frame and is promoted; the old
    /// primary then follows it.
    Switchover(SwitchoverTarget),
}

#[derive(Debug, Clone, Args)]
pub struct SwitchoverTarget {
    /// The primary (--url) and how to reach both servers.
    #[command(flatten)]
    pub target: AdminTarget,
    /// The replica to promote (its internal API URL).
    #[arg(long)]
    pub to: String,
    /// How long a running write transaction may take to finish before the
    /// switchover is called off.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub drain: Duration,
}

/// A server's admin API, as `sqld promote`, `follow` and `status` reach
/// it. The token comes from --token-file or SQLD_REPLICATION_TOKEN (never
/// a flag: command lines are readable by every local user).
#[derive(Debug, Clone, Args)]
pub struct AdminTarget {
    /// The server's internal API (its --internal-listen-addr, or its HTTP
    /// address), e.g. http://127.0.0.1:8081.
    #[arg(long)]
    pub url: String,
    /// A file holding the replication token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// A CA certificate to verify an https:// URL with.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// How long to wait for the change to finish.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct FollowTarget {
    #[command(flatten)]
    pub target: AdminTarget,
    /// The primary to follow, as replicas name it (its internal API URL).
    #[arg(long)]
    pub primary_url: String,
}

#[derive(Debug, Clone, Args)]
pub struct Restore {
    /// The backup store (as --backup-url).
    #[arg(long)]
    pub from: String,
    /// Restore the last commit at or before this time (RFC 3339).
    #[arg(long, conflicts_with = "to_frame")]
    pub to_time: Option<String>,
    /// Restore the last commit at or before this frame.
    #[arg(long)]
    pub to_frame: Option<u64>,
    /// The log id to restore (default: the newest, or the one live at
    /// --to-time).
    #[arg(long)]
    pub log_id: Option<String>,
    /// Directory of the restored database (must not hold one yet).
    #[arg(long)]
    pub db_path: PathBuf,
    /// When --db-path already holds a database, restore nothing and exit
    /// successfully (an orchestrator's first-start step, safe to rerun).
    #[arg(long)]
    pub if_empty: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BackupCommand {
    /// Generations in the store, with the first and last recoverable
    /// frame and time of each.
    List { url: String },
    /// Restore the latest point into a temporary directory and run
    /// PRAGMA integrity_check on it.
    Verify { url: String },
}

#[derive(Debug, Clone, Args)]
pub struct DevCluster {
    /// Number of read replicas.
    #[arg(long, default_value_t = 2)]
    pub replicas: u16,
    /// Directory for the cluster's databases (one subdirectory each).
    #[arg(long, default_value = "sqld-cluster")]
    pub db_path: PathBuf,
    /// Postgres port of the primary; replicas take the next ones.
    #[arg(long, default_value_t = 5432)]
    pub pg_port: u16,
    /// HTTP port of the primary; replicas take the next ones.
    #[arg(long, default_value_t = 8080)]
    pub http_port: u16,
    /// Watch the primary: when its process dies, promote the most advanced
    /// replica, point the others at it, and start the old primary again as
    /// its replica (a development stand-in for the operator's failover).
    #[arg(long)]
    pub failover: bool,
}

impl Config {
    /// Where the others reach this server's internal API (`--advertise-url`).
    pub fn advertised_url(&self) -> Option<String> {
        if let Some(url) = &self.advertise_url {
            return Some(url.trim_end_matches('/').to_owned());
        }
        let (addr, tls) = match self.internal_listen_addr {
            Some(addr) => (addr, self.tls_cert.is_some() && self.tls_key.is_some()),
            None => (self.http_listen_addr, false),
        };
        let scheme = if tls { "https" } else { "http" };
        (!addr.ip().is_unspecified()).then(|| format!("{scheme}://{addr}"))
    }

    /// The authentication method in force.
    pub fn auth_method(&self) -> AuthMethod {
        self.auth.unwrap_or(if self.dev {
            AuthMethod::Trust
        } else {
            AuthMethod::Password
        })
    }
}

/// Secret-bearing flags, with the safer ways to give the same secret.
const SECRET_FLAGS: &[(&str, &str, &str)] = &[
    ("password", "--password", "SQLD_PASSWORD or --users-file"),
    (
        "replication_token",
        "--replication-token",
        "SQLD_REPLICATION_TOKEN or --replication-token-file",
    ),
];

/// A warning for each secret given as a command-line argument, which any
/// local user can read (unlike the environment, readable by the process's
/// owner only, or a file with restricted permissions).
pub fn secrets_on_command_line(matches: &ArgMatches) -> Vec<String> {
    SECRET_FLAGS
        .iter()
        .filter(|(id, _, _)| matches.value_source(id) == Some(ValueSource::CommandLine))
        .map(|(_, flag, instead)| {
            format!(
                "{flag} was given on the command line, where any local user can read it \
                 (ps, /proc/<pid>/cmdline); use {instead} instead"
            )
        })
        .collect()
}

/// A zero duration on the command line means "no limit".
pub fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn secrets_given_as_flags_are_told_apart_from_defaults() {
        let matches = Config::command()
            .try_get_matches_from(["sqld", "--password", "pw", "--replication-token", "t"])
            .unwrap();
        let warnings = secrets_on_command_line(&matches);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("--password ") && warnings[0].contains("SQLD_PASSWORD"));
        assert!(warnings[1].contains("--replication-token-file"));
        let matches = Config::command()
            .try_get_matches_from(["sqld", "--user", "u"])
            .unwrap();
        assert!(secrets_on_command_line(&matches).is_empty());
    }
}
