//! The local end-to-end tier (see `local/mod.rs`): the pods rendered for
//! `deploy/examples/sqldcluster.yaml` (a primary and two replicas) run as
//! real sqld processes with exactly their args and env, and the cluster is
//! exercised through its Services: a write via `-rw`, read back via `-ro`,
//! a write forwarded by a replica, the replication metrics. Then every
//! metric name the Grafana dashboard and the Prometheus rules use is looked
//! up in what the live primary, a live replica and the operator export.
//!
//! Needs the sqld binary (`cargo build -p sqld`); fails, never skips,
//! without it.

mod local;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use local::{exported_names, http_get, sqld_bin, workspace_file, LocalCluster};
use sqld_operator::builders::Credentials;
use sqld_operator::sqld_flags::{RESTORE_FLAGS, SQLD_FLAGS};
use tokio_postgres::{Client, NoTls};

const PASSWORD: &str = "local-e2e-password";
/// How long a replica may take to show a primary's commit.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(15);

fn credentials() -> Credentials {
    Credentials {
        password: PASSWORD.into(),
        replication_token: "local-e2e-token".into(),
    }
}

fn example() -> String {
    std::fs::read_to_string(workspace_file("deploy/examples/sqldcluster.yaml")).unwrap()
}

async fn connect(addr: std::net::SocketAddr) -> Client {
    let (client, conn) = tokio_postgres::Config::new()
        .host(addr.ip().to_string())
        .port(addr.port())
        .user("sqld")
        .password(PASSWORD)
        .dbname("sqld")
        .connect_timeout(Duration::from_secs(5))
        .connect(NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    tokio::spawn(conn);
    client
}

async fn value_of(client: &Client, k: i64) -> Option<String> {
    client
        .query_opt("select v from kv where k = $1", &[&k])
        .await
        .ok()
        .flatten()
        .map(|r| r.get(0))
}

async fn wait_for(client: &Client, k: i64, want: &str, what: &str) {
    let deadline = Instant::now() + REPLICATION_TIMEOUT;
    while value_of(client, k).await.as_deref() != Some(want) {
        assert!(Instant::now() < deadline, "{what}: row {k} never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn sqld_help_lists_every_option_the_operator_knows() {
    let out = Command::new(sqld_bin()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for f in SQLD_FLAGS {
        assert!(
            help.contains(&format!("{} ", f.flag)) || help.contains(&format!("{}\n", f.flag)),
            "sqld --help has no {}",
            f.flag
        );
        assert!(
            help.contains(&format!("[env: {}", f.env)),
            "sqld --help: {} is not read from {}",
            f.flag,
            f.env
        );
    }
}

#[test]
fn sqld_restore_takes_the_recovery_init_containers_options() {
    let out = Command::new(sqld_bin())
        .args(["restore", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for f in RESTORE_FLAGS {
        assert!(
            help.contains(&format!("{f} ")) || help.contains(&format!("{f}\n")),
            "sqld restore --help has no {f}"
        );
    }
}

/// The recovery init container's command, rerun on a volume that already
/// holds a database (a pod restarted after its restore): it succeeds and
/// leaves the data alone, without reaching the store.
#[test]
fn the_restore_command_is_a_no_op_on_a_volume_with_data() {
    let dir = std::env::temp_dir().join(format!("sqld-restore-if-empty-{}", std::process::id()));
    let db = dir.join("db");
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(db.join("data.db"), b"kept").unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "restore",
            "--from",
            "file:///nonexistent/store",
            "--db-path",
        ];
        args.push(db.to_str().unwrap());
        args.extend(extra);
        Command::new(sqld_bin()).args(&args).output().unwrap()
    };
    let out = run(&["--if-empty"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(db.join("data.db")).unwrap(), b"kept");
    // Without it the same command refuses (what a restart would have met).
    assert!(!run(&[]).status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_pods_form_a_working_cluster() {
    let cluster = tokio::task::spawn_blocking(|| LocalCluster::start(&example(), credentials()))
        .await
        .unwrap();
    assert_eq!(cluster.pods.len(), 3, "a primary and two replicas");

    let rw = cluster.endpoints("app-rw", 5432);
    assert_eq!(rw.len(), 1);
    let primary = connect(rw[0]).await;
    primary
        .batch_execute("create table kv(k integer primary key, v text)")
        .await
        .unwrap();
    primary
        .execute("insert into kv values (1, 'one')", &[])
        .await
        .unwrap();

    let ro = cluster.endpoints("app-ro", 5432);
    assert_eq!(ro.len(), 2, "-ro routes to the two replicas");
    let mut replicas = Vec::new();
    for addr in &ro {
        let c = connect(*addr).await;
        wait_for(&c, 1, "one", &format!("replica {addr}")).await;
        replicas.push(c);
    }

    // A write through a replica is forwarded to the primary, and the
    // replica's session reads it back at once.
    replicas[1]
        .execute("insert into kv values (2, 'two')", &[])
        .await
        .unwrap();
    assert_eq!(value_of(&replicas[1], 2).await.as_deref(), Some("two"));
    assert_eq!(value_of(&primary, 2).await.as_deref(), Some("two"));
    wait_for(&replicas[0], 2, "two", "the other replica").await;

    // Every instance passes each of its pod's probes, and the replication
    // metrics are there.
    for pod in &cluster.pods {
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            let (addr, path) = pod.probe(probe);
            assert_eq!(
                http_get(addr, &path).map(|r| r.0),
                Some(200),
                "{} {probe} {path}",
                pod.name
            );
        }
    }
    let replica_pod = &cluster.service_pods("app-ro")[0];
    let (_, metrics) = http_get(replica_pod.addr(8080), "/metrics").unwrap();
    assert!(metrics.contains("sqld_replication_lag_frames"), "{metrics}");
    let primary_pod = &cluster.service_pods("app-rw")[0];
    let (_, metrics) = http_get(primary_pod.addr(8080), "/metrics").unwrap();
    let frame_no = metrics
        .lines()
        .find(|l| l.starts_with("sqld_replication_frame_no "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no sqld_replication_frame_no:\n{metrics}"));
    assert!(frame_no > 0.0);
}

// ---- metric names used by the dashboard and the rules ----

/// PromQL words that are not metric names.
const PROMQL_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
];

/// The metric names a PromQL expression reads: identifiers outside label
/// matchers, ranges, strings and grouping clauses that are not function
/// calls or keywords.
fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut skip_group = false;
    while i < chars.len() {
        let ch = chars[i];
        match ch {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != ch {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if ch == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    i += 1;
                }
                i += 1;
            }
            '(' if skip_group => {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                skip_group = false;
                i += 1;
            }
            '$' => {
                // A Grafana variable.
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                let rest: String = chars[j..].iter().take(8).collect();
                // A function call, or an aggregation (`sum by (x) (...)`).
                let call = rest.starts_with('(')
                    || rest.starts_with("by ")
                    || rest.starts_with("by(")
                    || rest.starts_with("without");
                let lower = word.to_ascii_lowercase();
                if [
                    "by",
                    "without",
                    "on",
                    "ignoring",
                    "group_left",
                    "group_right",
                ]
                .contains(&lower.as_str())
                {
                    skip_group = true;
                } else if !call && !PROMQL_KEYWORDS.contains(&lower.as_str()) {
                    names.insert(word);
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // Numbers and durations (5m, 1e3).
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names
}

fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// Every PromQL expression of the dashboard and the rules.
fn monitoring_exprs() -> Vec<(String, String)> {
    let mut exprs = Vec::new();
    let dash = workspace_file("deploy/monitoring/grafana-dashboard.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dash).unwrap()).unwrap();
    let mut found = Vec::new();
    collect_exprs(&json, &mut found);
    exprs.extend(found.into_iter().map(|e| ("dashboard".to_string(), e)));
    let rules = workspace_file("deploy/monitoring/prometheus-rules.yaml");
    let yaml: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&rules).unwrap()).unwrap();
    let mut found = Vec::new();
    collect_exprs(&yaml, &mut found);
    exprs.extend(found.into_iter().map(|e| ("rules".to_string(), e)));
    exprs
}

/// Names exported by other components, with the reason they may be used
/// (`deploy/monitoring/external-metrics.txt`: `name  # reason`).
fn external_names() -> BTreeSet<String> {
    let text =
        std::fs::read_to_string(workspace_file("deploy/monitoring/external-metrics.txt")).unwrap();
    text.lines()
        .filter_map(|l| {
            let (name, reason) = l.split_once('#')?;
            let name = name.trim();
            assert!(!reason.trim().is_empty(), "no reason for {name}");
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect()
}

#[test]
fn promql_names_are_extracted() {
    let got = promql_metric_names(
        "histogram_quantile(0.99, sum by (le, pod) (rate(sqld_x_bucket{kind=~\"a|b\"}[$__rate_interval]))) / on(pod) group_left sqld_y > 5 and up == bool 0",
    );
    let want: BTreeSet<String> = ["sqld_x_bucket", "sqld_y", "up"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_rules_use_only_exported_metrics() {
    let exprs = monitoring_exprs();
    assert!(exprs.len() >= 10, "only {} expressions found", exprs.len());

    let cluster = tokio::task::spawn_blocking(|| LocalCluster::start(&example(), credentials()))
        .await
        .unwrap();
    // Labelled series appear once used: a statement of each kind, an error.
    let primary = connect(cluster.endpoints("app-rw", 5432)[0]).await;
    primary
        .batch_execute("create table m(x integer); insert into m values (1); select * from m")
        .await
        .unwrap();
    assert!(primary
        .batch_execute("select * from missing")
        .await
        .is_err());
    let replica_addr = cluster.endpoints("app-ro", 5432)[0];
    let replica = connect(replica_addr).await;
    let deadline = Instant::now() + REPLICATION_TIMEOUT;
    while replica.query("select * from m", &[]).await.is_err() {
        assert!(Instant::now() < deadline, "replica never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut exported = BTreeSet::new();
    for pod in &cluster.pods {
        let (_, text) = http_get(pod.addr(8080), "/metrics").expect("metrics");
        exported.extend(exported_names(&text));
    }
    let operator = sqld_operator::metrics::Metrics::new();
    drop(operator.start());
    operator.failure(&sqld_operator::Error::InvalidSpec("x".into()));
    operator.leader.set(1);
    exported.extend(exported_names(&operator.encode()));
    let external = external_names();

    let mut missing = Vec::new();
    for (source, expr) in &exprs {
        for name in promql_metric_names(expr) {
            if !exported.contains(&name) && !external.contains(&name) {
                missing.push(format!("{source}: {name} in {expr}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "metric names not exported:\n{}\nexported: {exported:?}",
        missing.join("\n")
    );
}
