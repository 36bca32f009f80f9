//! Pure tests of every child-object builder: names, labels, selectors,
//! ports, owner references, volumes, Services, budgets, Secrets, monitors,
//! FoundationDB objects, and spec validation. The shared pod template has
//! its own tests in `pod_template.rs`.

mod fixtures;

use fixtures::{cluster, inputs, pod_spec, sqld};
use k8s_openapi::api::core::v1::{EnvVar, PodTemplateSpec};
use kube::api::ObjectMeta;
use serde_json::json;
use sqld_operator::builders::{self, pod, Credentials};
use sqld_operator::naming;
use sqld_operator::validation;

fn env<'a>(t: &'a PodTemplateSpec, name: &str) -> Option<&'a EnvVar> {
    sqld(t)
        .env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == name)
}

#[test]
fn primary_statefulset_shape() {
    let c = cluster("storage: {size: 10Gi, storageClassName: fast}");
    let sts = builders::statefulset::primary_statefulset(&c, &inputs());
    assert_eq!(sts.metadata.name.as_deref(), Some("db-primary"));
    assert_eq!(sts.metadata.namespace.as_deref(), Some("prod"));
    assert_eq!(sts.spec.replicas, Some(1));
    assert_eq!(sts.spec.service_name.as_deref(), Some("db-primary"));
    let selector = sts.spec.selector.match_labels.clone().unwrap();
    let labels = sts
        .spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    for (k, v) in &selector {
        assert_eq!(labels.get(k), Some(v), "template lacks selector label {k}");
    }
    assert_eq!(
        selector.get(naming::LABEL_ROLE).map(String::as_str),
        Some("primary")
    );
    let vct = &sts.spec.volume_claim_templates.as_ref().unwrap()[0];
    assert_eq!(vct.metadata.name.as_deref(), Some("data"));
    let pvc = vct.spec.as_ref().unwrap();
    assert_eq!(pvc.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(
        pvc.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0,
        "10Gi"
    );
    assert_eq!(pvc.access_modes.as_ref().unwrap(), &["ReadWriteOnce"]);
    // The data volume comes from the claim, not from a pod volume.
    assert!(pod_spec(&sts.spec.template)
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .all(|v| v.name != "data"));
}

#[test]
fn replica_command_line_points_at_the_primary() {
    let c = cluster("replicas: 2");
    let d = builders::deployment::replica_deployment(&c, &inputs());
    assert_eq!(d.metadata.name.as_deref(), Some("db-replica"));
    assert_eq!(d.spec.replicas, Some(2));
    let args = sqld(&d.spec.template).args.clone().unwrap();
    let i = args.iter().position(|a| a == "--primary-url").unwrap();
    assert_eq!(args[i + 1], "http://db-primary.prod.svc:8080");
    assert_eq!(
        env(&d.spec.template, "SQLD_MAX_REPLICA_LAG_FRAMES")
            .unwrap()
            .value
            .as_deref(),
        Some("10000")
    );
    let vols = pod_spec(&d.spec.template).volumes.clone().unwrap();
    let data = vols.iter().find(|v| v.name == "data").unwrap();
    assert!(
        data.empty_dir.is_some(),
        "replicas bootstrap into an emptyDir"
    );
    let selector = d.spec.selector.match_labels.clone().unwrap();
    assert_eq!(
        selector.get(naming::LABEL_ROLE).map(String::as_str),
        Some("replica")
    );
    let strategy = d.spec.strategy.unwrap().rolling_update.unwrap();
    assert_eq!(
        strategy.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0))
    );
}

#[test]
fn services_route_by_role() {
    let c = cluster("replicas: 2");
    let role = |s: &k8s_openapi::api::core::v1::Service| {
        s.spec
            .as_ref()
            .unwrap()
            .selector
            .as_ref()
            .unwrap()
            .get(naming::LABEL_ROLE)
            .cloned()
    };
    let headless = builders::services::headless_service(&c);
    assert_eq!(headless.metadata.name.as_deref(), Some("db-primary"));
    assert_eq!(
        headless.spec.as_ref().unwrap().cluster_ip.as_deref(),
        Some("None")
    );
    assert_eq!(role(&headless).as_deref(), Some("primary"));
    assert_eq!(
        role(&builders::services::rw_service(&c)).as_deref(),
        Some("primary")
    );
    assert_eq!(
        role(&builders::services::ro_service(&c, None)).as_deref(),
        Some("replica")
    );
    assert_eq!(
        role(&builders::services::ro_service(&c, Some(1))).as_deref(),
        Some("replica")
    );
    assert_eq!(
        role(&builders::services::ro_service(&c, Some(0))).as_deref(),
        Some("primary"),
        "no replica ready yet (bootstrapping, drained): -ro keeps answering"
    );
    let r = builders::services::r_service(&c);
    assert_eq!(role(&r), None, "-r selects every instance");
    assert_eq!(r.metadata.name.as_deref(), Some("db-r"));
    let none = cluster("replicas: 0");
    assert_eq!(
        role(&builders::services::ro_service(&none, Some(3))).as_deref(),
        Some("primary"),
        "-ro falls back to the primary"
    );
}

#[test]
fn every_child_is_owned_and_labelled() {
    let c = cluster("{replicas: 3, monitoring: {enabled: true}}");
    let children = builders::children(&c, &inputs());
    let values = children.to_values().unwrap();
    assert!(values.len() >= 9);
    for v in &values {
        let meta: ObjectMeta = serde_json::from_value(v["metadata"].clone()).unwrap();
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "SqldCluster");
        assert_eq!(owner.api_version, "sqld.dev/v1alpha1");
        assert_eq!(owner.uid, "cluster-uid");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(meta.namespace.as_deref(), Some("prod"));
        let labels = meta.labels.unwrap();
        assert_eq!(
            labels[naming::LABEL_MANAGED_BY],
            "sqld-operator",
            "{}",
            v["kind"]
        );
        assert_eq!(labels[naming::LABEL_CLUSTER], "db");
    }
}

#[test]
fn disruption_budget_only_for_two_or_more_replicas() {
    assert!(builders::pdb::replica_pdb(&cluster("replicas: 0")).is_none());
    assert!(builders::pdb::replica_pdb(&cluster("replicas: 1")).is_none());
    let pdb = builders::pdb::replica_pdb(&cluster("replicas: 3")).unwrap();
    let spec = pdb.spec.unwrap();
    assert_eq!(
        spec.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    assert_eq!(
        spec.unhealthy_pod_eviction_policy.as_deref(),
        Some("AlwaysAllow")
    );
    let role = spec.selector.unwrap().match_labels.unwrap()[naming::LABEL_ROLE].clone();
    assert_eq!(role, "replica", "never a budget over the single primary");
}

#[test]
fn generated_credentials_secret() {
    let c = cluster("{}");
    let s = builders::secret::credentials_secret(&c, &inputs().credentials.unwrap()).unwrap();
    assert_eq!(s.metadata.name.as_deref(), Some("db-credentials"));
    let data = s.string_data.unwrap();
    assert_eq!(data["password"], "pw");
    assert_eq!(data["username"], "sqld");
    assert_eq!(data["replication-token"], "tok");
    let a = Credentials::generate();
    let b = Credentials::generate();
    assert_eq!(a.password.len(), 32);
    assert_ne!(a.password, b.password);
    assert_ne!(a.password, a.replication_token);
}

#[test]
fn monitors() {
    assert!(builders::monitoring::monitor(&cluster("{}")).is_none());
    let pm = builders::monitoring::monitor(&cluster(
        "{monitoring: {enabled: true, interval: 15s, labels: {release: prom}}}",
    ))
    .unwrap();
    let v = serde_json::to_value(&pm).unwrap();
    assert_eq!(v["kind"], "PodMonitor");
    assert_eq!(
        v["spec"]["podTargetLabels"],
        serde_json::json!(["sqld.dev/cluster", "sqld.dev/role"]),
        "the dashboard and the alerts group by cluster and role"
    );
    assert_eq!(v["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(v["spec"]["podMetricsEndpoints"][0]["port"], "http");
    assert_eq!(v["spec"]["podMetricsEndpoints"][0]["path"], "/metrics");
    assert_eq!(v["spec"]["podMetricsEndpoints"][0]["interval"], "15s");
    assert_eq!(
        v["spec"]["selector"]["matchLabels"][naming::LABEL_CLUSTER],
        "db"
    );
    assert_eq!(v["metadata"]["labels"]["release"], "prom");
    let sm = builders::monitoring::monitor(&cluster(
        "{monitoring: {enabled: true, kind: ServiceMonitor}}",
    ))
    .unwrap();
    let v = serde_json::to_value(&sm).unwrap();
    assert_eq!(v["kind"], "ServiceMonitor");
    assert_eq!(
        v["spec"]["selector"]["matchLabels"]["sqld.dev/service"],
        "r"
    );
    assert_eq!(v["spec"]["endpoints"][0]["port"], "http");
}

#[test]
fn foundationdb_managed_and_connection_string() {
    let c = cluster("{backend: {type: foundationdb, foundationdb: {managed: {version: 7.3.43, processCounts: {storage: 5}}}}}");
    let fdb = serde_json::to_value(builders::foundationdb::fdb_cluster(&c).unwrap()).unwrap();
    assert_eq!(fdb["apiVersion"], "apps.foundationdb.org/v1beta2");
    assert_eq!(fdb["kind"], "FoundationDBCluster");
    assert_eq!(fdb["metadata"]["name"], "db-fdb");
    assert_eq!(fdb["spec"]["version"], "7.3.43");
    assert_eq!(fdb["spec"]["processCounts"]["storage"], 5);
    assert_eq!(fdb["spec"]["processCounts"]["log"], 3);
    // 0 is the fdb operator's "choose for me"; -1 would mean no stateless
    // processes at all (no proxies, no resolvers: no database).
    assert_eq!(fdb["spec"]["processCounts"]["stateless"], 0);
    assert_eq!(
        fdb["spec"]["databaseConfiguration"]["redundancy_mode"],
        "double"
    );
    let sts = builders::statefulset::primary_statefulset(&c, &inputs());
    assert!(
        sts.spec.volume_claim_templates.is_none(),
        "the primary's disk is a cache"
    );
    let vols = pod_spec(&sts.spec.template).volumes.clone().unwrap();
    let data = vols.iter().find(|v| v.name == "data").unwrap();
    assert_eq!(
        data.empty_dir
            .as_ref()
            .unwrap()
            .size_limit
            .as_ref()
            .unwrap()
            .0,
        "1Gi"
    );
    let fdb_vol = vols.iter().find(|v| v.name == "fdb").unwrap();
    assert_eq!(fdb_vol.config_map.as_ref().unwrap().name, "db-fdb-config");
    let mounts = sqld(&sts.spec.template).volume_mounts.clone().unwrap();
    let fdb_mount = mounts.iter().find(|m| m.name == "fdb").unwrap();
    assert_eq!(
        format!("{}/fdb.cluster", fdb_mount.mount_path),
        pod::FDB_CLUSTER_FILE_PATH
    );
    assert!(
        env(&sts.spec.template, "FDB_CLUSTER_FILE").is_none()
            && env(&sts.spec.template, "SQLD_BACKEND").is_none(),
        "sqld has no FoundationDB backend yet: nothing it does not read"
    );
    assert!(builders::foundationdb::cluster_file_config_map(&c).is_none());

    let cs = cluster(
        "{backend: {type: foundationdb, foundationdb: {connectionString: 'db:abc@10.0.0.1:4500'}}}",
    );
    let cm = builders::foundationdb::cluster_file_config_map(&cs).unwrap();
    assert_eq!(cm.metadata.name.as_deref(), Some("db-fdb-cluster-file"));
    assert_eq!(cm.data.unwrap()["cluster-file"], "db:abc@10.0.0.1:4500");
    assert!(builders::foundationdb::fdb_cluster(&cs).is_none());
    assert!(builders::foundationdb::cluster_file_config_map(&cluster("{}")).is_none());
}

#[test]
fn validation_finds_what_the_operator_cannot_realise() {
    assert!(validation::check(&cluster("{}")).is_empty());
    let reasons = |y: &str| {
        validation::check(&cluster(y))
            .into_iter()
            .map(|p| p.reason)
            .collect::<Vec<_>>()
    };
    assert_eq!(reasons("extraArgs: ['--db-path=/x']"), ["ReservedFlag"]);
    assert_eq!(
        reasons("auth: {method: cleartext}"),
        ["CleartextWithoutTLS"]
    );
    assert!(reasons("{auth: {method: cleartext}, tls: {secretName: c}}").is_empty());
    assert_eq!(reasons("storage: {size: big}"), ["InvalidStorageSize"]);
    assert_eq!(reasons("backend: {type: foundationdb}"), ["InvalidBackend"]);
    assert_eq!(
        reasons("extraArgs: ['--no-such-flag', '--statement-timeout']"),
        ["InvalidExtraArgs", "InvalidExtraArgs"]
    );
    assert!(reasons("extraArgs: ['--statement-timeout', '5s', '--busy-timeout=1s']").is_empty());
    assert_eq!(validation::parse_quantity("10Gi"), Some(10 << 30));
    assert_eq!(validation::parse_quantity("500M"), Some(500_000_000));
    assert_eq!(validation::parse_quantity("1.5Gi"), Some(3 << 29));
    assert_eq!(validation::parse_quantity("Gi"), None);
    assert_eq!(validation::parse_quantity("1.2.3"), None);
}

#[test]
fn validation_keeps_credentials_and_wiring_out_of_user_settings() {
    let reasons = |y: &str| {
        validation::check(&cluster(y))
            .into_iter()
            .map(|p| p.reason)
            .collect::<Vec<_>>()
    };
    // Credentials only from the Secret, never on the command line.
    assert_eq!(
        reasons("extraArgs: ['--password=hunter2']"),
        ["ReservedFlag"]
    );
    assert_eq!(reasons("extraArgs: ['--user', 'admin']"), ["ReservedFlag"]);
    assert_eq!(reasons("extraArgs: ['--dev']"), ["ReservedFlag"]);
    assert_eq!(
        reasons("env: [{name: SQLD_DEV, value: 'true'}]"),
        ["ReservedEnv"]
    );
    // The environment cannot rewire what the operator sets either.
    let env = |name: &str| format!("env: [{{name: {name}, value: x}}]");
    assert_eq!(reasons(&env("SQLD_PRIMARY_URL")), ["ReservedEnv"]);
    assert_eq!(reasons(&env("SQLD_REPLICATION_TOKEN")), ["ReservedEnv"]);
    assert_eq!(reasons(&env("SQLD_PASSWORD")), ["ReservedEnv"]);
    assert!(reasons(&env("RUST_LOG")).is_empty());
    // sqld must finish shutting down before the kubelet's SIGKILL (30 s
    // grace period by default: 22 s after the preStop pause and margin).
    for (arg, ok) in [
        ("--shutdown-grace-period=20s", true),
        ("--shutdown-grace-period=2m", false),
    ] {
        let r = reasons(&format!("extraArgs: ['{arg}']"));
        assert_eq!(r.is_empty(), ok, "{arg}: {r:?}");
    }
    assert_eq!(
        reasons(
            "{extraArgs: ['--shutdown-grace-period', '60'], terminationGracePeriodSeconds: 30}"
        ),
        ["ShutdownLongerThanGracePeriod"]
    );
    assert!(reasons(
        "{extraArgs: ['--shutdown-grace-period', '60'], terminationGracePeriodSeconds: 90}"
    )
    .is_empty());
    assert_eq!(
        reasons("auth: {passwordKey: k, replicationTokenKey: k}"),
        ["AuthKeysCollide"]
    );
}

#[test]
fn quantities_in_exponent_form_are_what_cel_accepts() {
    assert_eq!(validation::parse_quantity("1e9"), Some(1_000_000_000));
    assert_eq!(validation::parse_quantity("5E3"), Some(5_000));
    assert_eq!(validation::parse_quantity("15e-1"), Some(2), "rounds up");
    assert_eq!(
        validation::parse_quantity("1E"),
        Some(1_000_000_000_000_000_000),
        "exa"
    );
    assert_eq!(validation::parse_quantity("e9"), None);
    assert!(validation::check(&cluster("storage: {size: '1e9'}")).is_empty());
}

#[test]
fn network_policy_keeps_the_http_port_to_the_cluster_the_operator_and_monitoring() {
    let c = cluster("{replicas: 2}");
    let np = builders::networkpolicy::network_policy(&c).expect("on by default");
    let v = serde_json::to_value(&np).unwrap();
    assert_eq!(v["metadata"]["name"], "db");
    assert_eq!(
        v["spec"]["podSelector"]["matchLabels"]["sqld.dev/cluster"],
        "db"
    );
    assert_eq!(v["spec"]["policyTypes"], json!(["Ingress"]));
    let rules = v["spec"]["ingress"].as_array().unwrap();
    let rule = |port: &str| {
        rules
            .iter()
            .find(|r| r["ports"][0]["port"] == port)
            .unwrap_or_else(|| panic!("no rule for {port}"))
    };
    assert!(
        rule("postgres").get("from").is_none(),
        "pg: every source by default"
    );
    let http = rule("http")["from"].as_array().unwrap().clone();
    assert_eq!(http.len(), 3, "{http:?}");
    assert_eq!(
        http[0]["podSelector"]["matchLabels"]["sqld.dev/cluster"],
        "db"
    );
    assert!(
        http[0].get("namespaceSelector").is_none(),
        "own namespace only"
    );
    assert_eq!(
        http[1]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "sqld-operator"
    );
    assert_eq!(
        http[2]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );

    let custom = cluster(
        "{networkPolicy: {pgFrom: [{podSelector: {matchLabels: {app: web}}}], metricsFrom: []}}",
    );
    let v =
        serde_json::to_value(builders::networkpolicy::network_policy(&custom).unwrap()).unwrap();
    assert_eq!(
        v["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["app"],
        "web"
    );
    assert_eq!(v["spec"]["ingress"][1]["from"].as_array().unwrap().len(), 2);
    assert!(
        builders::networkpolicy::network_policy(&cluster("{networkPolicy: {enabled: false}}"))
            .is_none()
    );
}
