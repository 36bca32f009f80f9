//! The pods the operator renders speak sqld's real command line: every
//! argument and environment variable of every rendered sqld container is
//! one sqld accepts (per `sqld_flags`, the one list of sqld's options in
//! this crate). `local_cluster.rs` checks that list against the binary.

use sqld_operator::builders::Credentials;
use sqld_operator::render;
use sqld_operator::sqld_flags::{self, SQLD_FLAGS};

fn credentials() -> Credentials {
    Credentials {
        password: "pw".into(),
        replication_token: "tok".into(),
    }
}

/// The sqld containers of every workload rendered for a file's clusters.
fn sqld_containers(yaml: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for c in render::parse_clusters(yaml).unwrap() {
        for obj in render::render_cluster(&c, credentials()).unwrap() {
            let kind = obj["kind"].as_str().unwrap_or_default();
            if kind != "StatefulSet" && kind != "Deployment" {
                continue;
            }
            let containers = obj["spec"]["template"]["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert!(!containers.is_empty(), "{kind} without containers");
            out.extend(containers);
        }
    }
    out
}

fn examples() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

/// Variants that switch on every branch of the pod builder.
fn variants() -> Vec<(String, String)> {
    let specs = [
        "{replicas: 2}",
        "{replicas: 1, auth: {method: trust}}",
        "{replicas: 1, auth: {method: cleartext, secretName: s}, tls: {secretName: t}}",
        "{replicas: 1, replication: {maxLagFrames: 0}, extraArgs: ['--statement-timeout', '5s', '--log-format=json']}",
        "{replicas: 1, backend: {type: foundationdb, foundationdb: {connectionString: 'a:b@10.0.0.1:4500'}}}",
        "{replicas: 1, env: [{name: SQLD_LOG, value: debug}]}",
    ];
    specs
        .iter()
        .map(|spec| {
            (
                spec.to_string(),
                format!("apiVersion: sqld.dev/v1alpha1\nkind: SqldCluster\nmetadata: {{name: v, namespace: ns}}\nspec: {spec}\n"),
            )
        })
        .collect()
}

#[test]
fn every_rendered_container_uses_only_what_sqld_reads() {
    let mut checked = 0;
    for (what, yaml) in examples().into_iter().chain(variants()) {
        for container in sqld_containers(&yaml) {
            let args: Vec<String> =
                serde_json::from_value(container["args"].clone()).unwrap_or_default();
            let problems = sqld_flags::check_args(&args);
            assert!(problems.is_empty(), "{what}: {problems:?} in {args:?}");
            for e in container["env"].as_array().cloned().unwrap_or_default() {
                let name = e["name"].as_str().unwrap();
                assert!(
                    sqld_flags::reads_env(name),
                    "{what}: env {name} is not read by sqld"
                );
            }
            // An option given twice (flag and env) hides the env value.
            for f in SQLD_FLAGS {
                let by_arg = args.iter().any(|a| sqld_flags::by_flag(a) == Some(f));
                let by_env = container["env"]
                    .as_array()
                    .is_some_and(|env| env.iter().any(|e| e["name"] == f.env));
                assert!(!(by_arg && by_env), "{what}: {} set twice", f.flag);
            }
            checked += 1;
        }
    }
    assert!(checked >= 16, "only {checked} containers checked");
}

#[test]
fn replicas_get_the_lag_bound_and_the_primary_url() {
    let yaml = "apiVersion: sqld.dev/v1alpha1\nkind: SqldCluster\nmetadata: {name: v, namespace: ns}\nspec: {replicas: 1, replication: {maxLagFrames: 42}}\n";
    let containers = sqld_containers(yaml);
    let replica = containers
        .iter()
        .find(|c| {
            c["args"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "--primary-url")
        })
        .expect("a replica container");
    let lag = replica["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "SQLD_MAX_REPLICA_LAG_FRAMES")
        .expect("the lag bound");
    assert_eq!(lag["value"], "42");
}

#[test]
fn check_args_catches_mistakes() {
    let v =
        |a: &[&str]| sqld_flags::check_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert!(v(&["--db-path", "/x", "--dev", "--auth=trust"]).is_empty());
    assert_eq!(v(&["--poll-timeout-ms", "5"]).len(), 2);
    assert_eq!(v(&["--db-path"]), ["--db-path needs a value"]);
    assert_eq!(v(&["--dev=yes"]), ["--dev takes no value"]);
    assert_eq!(v(&["--db-path", "--dev"]), ["--db-path needs a value"]);
}
