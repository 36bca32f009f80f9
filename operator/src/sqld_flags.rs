//! sqld's command line as the operator relies on it: every flag the
//! operator passes (or lets users pass in `extraArgs`) and the environment
//! variable that sets the same option. sqld refuses unknown flags, so a pod
//! spec naming one crash-loops; and it ignores unknown environment
//! variables, so a misspelt one silently does nothing. Both kinds of drift
//! are caught by tests that check every rendered container against this
//! list, and this list against the real binary's `--help`.

/// One sqld option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqldFlag {
    /// The long flag, e.g. `--db-path`.
    pub flag: &'static str,
    /// The environment variable sqld reads for it.
    pub env: &'static str,
    /// Whether the flag takes a value (`--dev` does not).
    pub takes_value: bool,
}

const fn flag(flag: &'static str, env: &'static str) -> SqldFlag {
    SqldFlag {
        flag,
        env,
        takes_value: true,
    }
}

/// Every option of sqld, in its `--help` order.
pub const SQLD_FLAGS: &[SqldFlag] = &[
    flag("--db-path", "SQLD_DB_PATH"),
    flag("--pg-listen-addr", "SQLD_PG_LISTEN_ADDR"),
    flag("--http-listen-addr", "SQLD_HTTP_LISTEN_ADDR"),
    flag("--internal-listen-addr", "SQLD_INTERNAL_LISTEN_ADDR"),
    flag("--auth", "SQLD_AUTH"),
    SqldFlag {
        flag: "--dev",
        env: "SQLD_DEV",
        takes_value: false,
    },
    flag("--users-file", "SQLD_USERS_FILE"),
    flag("--password", "SQLD_PASSWORD"),
    flag("--user", "SQLD_USER"),
    flag("--tls-cert", "SQLD_TLS_CERT"),
    flag("--tls-key", "SQLD_TLS_KEY"),
    flag("--max-connections", "SQLD_MAX_CONNECTIONS"),
    flag("--max-authenticating", "SQLD_MAX_AUTHENTICATING"),
    flag(
        "--max-authenticating-per-address",
        "SQLD_MAX_AUTHENTICATING_PER_ADDRESS",
    ),
    flag("--max-message-size", "SQLD_MAX_MESSAGE_SIZE"),
    flag("--max-result-size", "SQLD_MAX_RESULT_SIZE"),
    flag("--statement-timeout", "SQLD_STATEMENT_TIMEOUT"),
    flag(
        "--idle-in-transaction-timeout",
        "SQLD_IDLE_IN_TRANSACTION_TIMEOUT",
    ),
    flag(
        "--write-transaction-timeout",
        "SQLD_WRITE_TRANSACTION_TIMEOUT",
    ),
    flag("--startup-timeout", "SQLD_STARTUP_TIMEOUT"),
    flag("--client-write-timeout", "SQLD_CLIENT_WRITE_TIMEOUT"),
    flag("--busy-timeout", "SQLD_BUSY_TIMEOUT"),
    flag("--shutdown-grace-period", "SQLD_SHUTDOWN_GRACE_PERIOD"),
    flag("--primary-url", "SQLD_PRIMARY_URL"),
    flag("--primary-ca-file", "SQLD_PRIMARY_CA_FILE"),
    flag("--max-replica-lag-frames", "SQLD_MAX_REPLICA_LAG_FRAMES"),
    flag("--advertise-url", "SQLD_ADVERTISE_URL"),
    flag("--synchronous-replicas", "SQLD_SYNCHRONOUS_REPLICAS"),
    flag(
        "--synchronous-commit-timeout",
        "SQLD_SYNCHRONOUS_COMMIT_TIMEOUT",
    ),
    flag("--replication-token", "SQLD_REPLICATION_TOKEN"),
    flag("--replication-token-file", "SQLD_REPLICATION_TOKEN_FILE"),
    flag(
        "--snapshot-threshold-frames",
        "SQLD_SNAPSHOT_THRESHOLD_FRAMES",
    ),
    flag("--backup-url", "SQLD_BACKUP_URL"),
    flag("--backup-interval", "SQLD_BACKUP_INTERVAL"),
    flag("--backup-segment-size", "SQLD_BACKUP_SEGMENT_SIZE"),
    flag(
        "--backup-generation-frames",
        "SQLD_BACKUP_GENERATION_FRAMES",
    ),
    flag("--backup-retention", "SQLD_BACKUP_RETENTION"),
    flag("--backup-max-local-frames", "SQLD_BACKUP_MAX_LOCAL_FRAMES"),
    flag("--bootstrap-from-backup", "SQLD_BOOTSTRAP_FROM_BACKUP"),
    flag("--log-format", "SQLD_LOG_FORMAT"),
];

/// Environment variables sqld reads that are not flags.
pub const SQLD_EXTRA_ENV: &[&str] = &[
    // The log filter (tracing's EnvFilter syntax).
    "SQLD_LOG",
    // The backup store's settings, read by its S3 client (`--backup-url`,
    // `sqld restore --from`).
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_ALLOW_HTTP",
];

/// Options of `sqld restore`, the recovery init container's command.
pub const RESTORE_FLAGS: &[&str] = &[
    "--from",
    "--to-time",
    "--to-frame",
    "--log-id",
    "--db-path",
    "--if-empty",
];

/// The option set by a flag (`--x` or `--x=value`).
pub fn by_flag(arg: &str) -> Option<&'static SqldFlag> {
    let name = arg.split('=').next().unwrap_or(arg);
    SQLD_FLAGS.iter().find(|f| f.flag == name)
}

/// Whether sqld reads this environment variable.
pub fn reads_env(name: &str) -> bool {
    SQLD_FLAGS.iter().any(|f| f.env == name) || SQLD_EXTRA_ENV.contains(&name)
}

/// What is wrong with a command line for sqld: unknown flags, flags missing
/// their value, stray positional arguments. Empty when sqld would accept it.
pub fn check_args(args: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        match by_flag(arg) {
            None if arg.starts_with('-') => problems.push(format!("unknown flag {arg}")),
            None => problems.push(format!("unexpected argument {arg:?}")),
            Some(f) if f.takes_value && !arg.contains('=') => {
                if args.get(i + 1).is_none_or(|v| v.starts_with("--")) {
                    problems.push(format!("{} needs a value", f.flag));
                } else {
                    i += 1;
                }
            }
            Some(f) if !f.takes_value && arg.contains('=') => {
                problems.push(format!("{} takes no value", f.flag));
            }
            Some(_) => {}
        }
        i += 1;
    }
    problems
}
