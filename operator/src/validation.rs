//! Checks of a spec that the operator itself runs before building anything.
//!
//! The CRD's schema and CEL rules reject most bad specs at the API server,
//! but not every cluster enforces them (an old API server, a spec written
//! before a rule existed, a file given to `render`), and some rules need
//! more than the object (a size that shrank against the live volume). A
//! problem found here becomes a `Ready=False` condition with the problem's
//! reason, and a Warning event, never a crash loop.

use crate::crd::{same_store, supported_store_url, AuthMethod, BackendType, SqldCluster};
use kube::ResourceExt;

/// Longest cluster name whose children's names all stay valid (a
/// StatefulSet's pods carry `<sts>-<revision hash>` labels limited to 63).
pub const MAX_NAME_LEN: usize = 44;

/// Flags the operator sets itself; overriding them through `extraArgs`
/// would break the pods' wiring.
const RESERVED_FLAGS: &[&str] = &[
    "--db-path",
    "--pg-listen-addr",
    "--http-listen-addr",
    "--primary-url",
    "--replication-token",
    "--tls-cert",
    "--tls-key",
    "--auth",
    // The credentials come from the Secret by reference: on the command
    // line they would be readable in the pod spec (and printed by render).
    "--password",
    "--user",
    // Development mode relaxes what a cluster relies on (trust by default,
    // no replication token required): never in a pod.
    "--dev",
];

/// One reason a spec cannot be realised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// CamelCase reason for conditions and events.
    pub reason: &'static str,
    /// Human-readable explanation naming the field.
    pub message: String,
}

impl Problem {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Problem {
            reason,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

/// A Service name's shape (RFC 1035 label; the length is checked apart).
pub fn is_dns1035_label(name: &str) -> bool {
    let b = name.as_bytes();
    let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_lowercase()
                && (l.is_ascii_lowercase() || l.is_ascii_digit())
                && b.iter().all(inner)
        }
        _ => false,
    }
}

/// Every problem of a spec, in field order; empty when it can be realised.
pub fn check(c: &SqldCluster) -> Vec<Problem> {
    let mut problems = Vec::new();
    let spec = &c.spec;
    if c.name_any().len() > MAX_NAME_LEN {
        problems.push(Problem::new(
            "NameTooLong",
            format!("metadata.name must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    if !is_dns1035_label(&c.name_any()) {
        problems.push(Problem::new(
            "InvalidName",
            "metadata.name must be a DNS-1035 label (a-z, 0-9 and '-', starting with a letter, ending with a letter or digit): the Services are named after it",
        ));
    }
    if spec.image.is_empty() {
        problems.push(Problem::new("InvalidImage", "spec.image must not be empty"));
    }
    if spec.replicas < 0 {
        problems.push(Problem::new(
            "InvalidReplicas",
            "spec.replicas must be at least 0",
        ));
    }
    if spec.auth.method == AuthMethod::Cleartext && spec.tls.is_none() {
        problems.push(Problem::new(
            "CleartextWithoutTLS",
            "spec.auth.method cleartext sends passwords in clear text and requires spec.tls",
        ));
    }
    if parse_quantity(&spec.storage.size).is_none() {
        problems.push(Problem::new(
            "InvalidStorageSize",
            format!(
                "spec.storage.size {:?} is not a quantity such as 10Gi",
                spec.storage.size
            ),
        ));
    }
    match (spec.backend.type_, &spec.backend.foundationdb) {
        (BackendType::Foundationdb, None) => problems.push(Problem::new(
            "InvalidBackend",
            "spec.backend.foundationdb is required with type foundationdb",
        )),
        (BackendType::Local, Some(_)) => problems.push(Problem::new(
            "InvalidBackend",
            "spec.backend.foundationdb is only allowed with type foundationdb",
        )),
        (_, Some(fdb)) => {
            let set = [
                fdb.cluster_file.is_some(),
                fdb.connection_string.is_some(),
                fdb.managed.is_some(),
            ]
            .iter()
            .filter(|x| **x)
            .count();
            if set != 1 {
                problems.push(Problem::new(
                    "InvalidBackend",
                    "spec.backend.foundationdb needs exactly one of clusterFile, connectionString, managed",
                ));
            }
        }
        (BackendType::Local, None) => {}
    }
    // sqld refuses unknown flags: such a pod would crash-loop.
    for problem in crate::sqld_flags::check_args(&spec.extra_args) {
        problems.push(Problem::new(
            "InvalidExtraArgs",
            format!("spec.extraArgs: {problem}"),
        ));
    }
    for arg in &spec.extra_args {
        let flag = arg.split('=').next().unwrap_or(arg);
        if RESERVED_FLAGS.contains(&flag) {
            problems.push(Problem::new(
                "ReservedFlag",
                format!("spec.extraArgs may not set {flag}; the operator sets it"),
            ));
        }
    }
    // The same settings through the environment: SQLD_PRIMARY_URL would
    // turn the primary into a replica of itself, and so on.
    for e in &spec.env {
        let reserved = RESERVED_FLAGS
            .iter()
            .filter_map(|f| crate::sqld_flags::by_flag(f))
            .any(|f| f.env == e.name);
        if reserved {
            problems.push(Problem::new(
                "ReservedEnv",
                format!("spec.env may not set {}; the operator sets it", e.name),
            ));
        }
    }
    if let Some(grace) =
        flag_value(&spec.extra_args, "--shutdown-grace-period").and_then(parse_seconds)
    {
        let budget = crate::builders::pod::shutdown_seconds(c);
        if grace > budget {
            problems.push(Problem::new(
                "ShutdownLongerThanGracePeriod",
                format!("spec.extraArgs --shutdown-grace-period {grace}s exceeds the {budget}s the pod has after SIGTERM (terminationGracePeriodSeconds minus the preStop pause and a margin): sqld would be killed mid-shutdown"),
            ));
        }
    }
    problems.extend(check_backup(c));
    if spec.auth.password_key == spec.auth.replication_token_key {
        problems.push(Problem::new(
            "AuthKeysCollide",
            format!("spec.auth.passwordKey and spec.auth.replicationTokenKey are both {:?}: the replication token would be the password", spec.auth.password_key),
        ));
    }
    problems
}

/// The value given to `flag` in `args` (`--flag=v` or `--flag v`).
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
            return Some(v);
        }
        if a == flag {
            return it.next().map(String::as_str);
        }
    }
    None
}

/// Whole seconds of a duration as sqld takes it (`30`, `30s`, `2m`, `1h`).
fn parse_seconds(v: &str) -> Option<i64> {
    let (digits, unit) = match v.find(|ch: char| !ch.is_ascii_digit()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let n: i64 = digits.parse().ok()?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// Bytes of a Kubernetes quantity (`10Gi`, `500M`, `1073741824`), or `None`
/// when it is not one. Decimal fractions (`1.5Gi`) and decimal exponents
/// (`1e9`, `5E3`, as CEL's `isQuantity` accepts them) are allowed;
/// milli-units are not, as they make no sense for storage.
pub fn parse_quantity(q: &str) -> Option<u128> {
    if let Some((mantissa, exp)) = split_exponent(q) {
        let base = parse_quantity(mantissa)?;
        return if exp >= 0 {
            base.checked_mul(10u128.checked_pow(u32::try_from(exp).ok()?)?)
        } else {
            Some(base.div_ceil(10u128.checked_pow(u32::try_from(-exp).ok()?)?))
        };
    }
    parse_plain_quantity(q)
}

/// `("1", 9)` for `1e9`; `None` without an exponent (`1E` is exa).
fn split_exponent(q: &str) -> Option<(&str, i32)> {
    let i = q.rfind(['e', 'E'])?;
    let (mantissa, exp) = (&q[..i], &q[i + 1..]);
    let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
    if mantissa.is_empty() || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((mantissa, exp.parse().ok()?))
}

fn parse_plain_quantity(q: &str) -> Option<u128> {
    const SUFFIXES: &[(&str, u128)] = &[
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("Ei", 1 << 60),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("P", 1_000_000_000_000_000),
        ("E", 1_000_000_000_000_000_000),
    ];
    let (digits, factor) = SUFFIXES
        .iter()
        .find_map(|(s, f)| q.strip_suffix(s).map(|d| (d, *f)))
        .unwrap_or((q, 1));
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !all_digits(whole) || !all_digits(frac) {
        return None;
    }
    let whole_bytes = if whole.is_empty() {
        0
    } else {
        whole.parse::<u128>().ok()?
    };
    let mut bytes = whole_bytes.checked_mul(factor)?;
    if !frac.is_empty() {
        // Fractions round up, as the API server does for byte quantities.
        let scale = 10u128.checked_pow(u32::try_from(frac.len()).ok()?)?;
        let frac_bytes = frac.parse::<u128>().ok()?.checked_mul(factor)?;
        bytes = bytes.checked_add(frac_bytes.div_ceil(scale))?;
    }
    Some(bytes)
}

/// Flags the operator sets on the primary for `spec.backup`.
const BACKUP_FLAGS: &[&str] = &[
    "--backup-url",
    "--backup-interval",
    "--backup-generation-frames",
    "--backup-retention",
];

/// Problems of `spec.backup` and `spec.bootstrap.recovery`. Reasons start
/// with `Backup` or `Recovery`, so the `BackupReady` condition can tell its
/// own apart.
fn check_backup(c: &SqldCluster) -> Vec<Problem> {
    let spec = &c.spec;
    let mut problems = Vec::new();
    let schemes = crate::crd::BACKUP_SCHEMES.join(" or ");
    if let Some(b) = &spec.backup {
        if !supported_store_url(&b.destination) {
            problems.push(Problem::new(
                "BackupDestinationInvalid",
                format!(
                    "spec.backup.destination {:?} must start with {schemes} and name a place",
                    b.destination
                ),
            ));
        }
        for (field, v) in [("interval", &b.interval), ("retention", &b.retention)] {
            if let Some(v) = v.as_deref().filter(|v| !is_duration(v)) {
                problems.push(Problem::new(
                    "BackupSettingInvalid",
                    format!("spec.backup.{field} {v:?} is not a duration such as 1s, 10m or 7d"),
                ));
            }
        }
        if b.generation_frames.is_some_and(|n| n < 1) {
            problems.push(Problem::new(
                "BackupSettingInvalid",
                "spec.backup.generationFrames must be at least 1",
            ));
        }
        // Two values for one flag make sqld refuse to start.
        for arg in &spec.extra_args {
            let flag = arg.split('=').next().unwrap_or(arg);
            if BACKUP_FLAGS.contains(&flag) {
                problems.push(Problem::new(
                    "BackupSettingInvalid",
                    format!(
                        "spec.extraArgs may not set {flag} with spec.backup; set it in spec.backup"
                    ),
                ));
            }
        }
    }
    let Some(r) = spec.bootstrap.as_ref().and_then(|b| b.recovery.as_ref()) else {
        return problems;
    };
    if !supported_store_url(&r.source) {
        problems.push(Problem::new(
            "RecoverySourceInvalid",
            format!(
                "spec.bootstrap.recovery.source {:?} must start with {schemes} and name a place",
                r.source
            ),
        ));
    }
    if let Some(b) = spec
        .backup
        .as_ref()
        .filter(|b| same_store(&b.destination, &r.source))
    {
        problems.push(Problem::new(
            "RecoverySourceIsBackupDestination",
            format!("spec.bootstrap.recovery.source and spec.backup.destination are both {:?}: the restored cluster would archive a new log into the backup it came from; give it a destination of its own", b.destination),
        ));
    }
    if r.to_time.is_some() && r.to_frame.is_some() {
        problems.push(Problem::new(
            "RecoveryTargetInvalid",
            "spec.bootstrap.recovery takes at most one of toTime, toFrame",
        ));
    }
    if let Some(t) = r.to_time.as_deref() {
        if chrono::DateTime::parse_from_rfc3339(t).is_err() {
            problems.push(Problem::new(
                "RecoveryTargetInvalid",
                format!("spec.bootstrap.recovery.toTime {t:?} is not an RFC 3339 time such as 2026-12-02T01:30:00Z"),
            ));
        }
    }
    if r.to_frame.is_some_and(|n| n < 0) {
        problems.push(Problem::new(
            "RecoveryTargetInvalid",
            "spec.bootstrap.recovery.toFrame must be at least 0",
        ));
    }
    problems
}

/// Whether `v` is a duration as the CRD's pattern allows it.
fn is_duration(v: &str) -> bool {
    duration_seconds(v).is_some()
}

/// Whole seconds of a duration in the subset of `humantime` (sqld's
/// parser) the CRD's pattern allows: `500ms`, `1s`, `10m`, `1h30m`, `7d`.
pub fn duration_seconds(v: &str) -> Option<i64> {
    let mut rest = v;
    let mut millis: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, factor) = [
            ("ms", 1),
            ("s", 1_000),
            ("m", 60_000),
            ("h", 3_600_000),
            ("d", 86_400_000),
        ]
        .into_iter()
        .find(|(u, _)| rest.starts_with(u))?;
        rest = &rest[unit.len()..];
        millis = millis.checked_add(n.checked_mul(factor)?)?;
    }
    (!v.is_empty()).then_some(millis / 1_000)
}
