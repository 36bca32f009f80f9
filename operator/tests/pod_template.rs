//! Pure tests of the pod template shared by the primary and the replicas:
//! sqld's command line and environment, probes, shutdown, security context,
//! resources, scheduling, and the config hash that decides when pods roll.

mod fixtures;

use fixtures::{cluster, inputs, pod_spec, sqld};
use k8s_openapi::api::core::v1::{EnvVar, PodTemplateSpec};
use sqld_operator::builders::{self, pod, Inputs};
use sqld_operator::crd::SqldCluster;
use sqld_operator::naming::{self, Role, ANNOTATION_CONFIG_HASH};

fn hash(t: &PodTemplateSpec) -> String {
    t.metadata.as_ref().unwrap().annotations.as_ref().unwrap()[ANNOTATION_CONFIG_HASH].clone()
}

fn env<'a>(t: &'a PodTemplateSpec, name: &str) -> Option<&'a EnvVar> {
    sqld(t)
        .env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == name)
}

#[test]
fn primary_command_line_follows_sqld_flags() {
    let c = cluster("{}");
    let t = builders::statefulset::primary_statefulset(&c, &inputs())
        .spec
        .template;
    assert_eq!(
        sqld(&t).args.as_ref().unwrap(),
        &[
            "--db-path",
            "/var/lib/sqld/db",
            "--pg-listen-addr",
            "0.0.0.0:5432",
            "--http-listen-addr",
            "0.0.0.0:8080",
            "--auth",
            "password",
        ]
    );
    assert_eq!(
        sqld(&t).image.as_deref(),
        Some(sqld_operator::crd::DEFAULT_IMAGE)
    );
    let pw = env(&t, "SQLD_PASSWORD")
        .unwrap()
        .value_from
        .as_ref()
        .unwrap();
    let key = pw.secret_key_ref.as_ref().unwrap();
    assert_eq!(
        (key.name.as_str(), key.key.as_str()),
        ("db-credentials", "password")
    );
    let user = env(&t, "SQLD_USER")
        .unwrap()
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .clone()
        .unwrap();
    assert_eq!(
        (user.key.as_str(), user.optional),
        ("username", Some(true)),
        "sqld's default user unless the Secret names one"
    );
    let token = env(&t, "SQLD_REPLICATION_TOKEN")
        .unwrap()
        .value_from
        .as_ref()
        .unwrap();
    assert_eq!(
        token.secret_key_ref.as_ref().unwrap().key,
        "replication-token"
    );
    assert!(
        env(&t, "SQLD_MAX_REPLICA_LAG_FRAMES").is_none(),
        "replication settings are for replicas"
    );
}

#[test]
fn probes_shutdown_and_security() {
    let c = cluster("terminationGracePeriodSeconds: 60");
    let t = builders::statefulset::primary_statefulset(&c, &inputs())
        .spec
        .template;
    let ct = sqld(&t);
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .clone()
            .unwrap()
    };
    assert_eq!(path(&ct.liveness_probe), "/health");
    assert_eq!(path(&ct.readiness_probe), "/ready");
    assert_eq!(path(&ct.startup_probe), "/health");
    let ports: Vec<_> = ct
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| (p.name.clone().unwrap(), p.container_port))
        .collect();
    assert_eq!(
        ports,
        [("postgres".to_string(), 5432), ("http".to_string(), 8080)]
    );
    assert!(ct
        .lifecycle
        .as_ref()
        .unwrap()
        .pre_stop
        .as_ref()
        .unwrap()
        .sleep
        .is_some());
    assert_eq!(pod_spec(&t).termination_grace_period_seconds, Some(60));
    // 60 s minus the 5 s preStop pause minus a 3 s margin.
    assert_eq!(
        env(&t, "SQLD_SHUTDOWN_GRACE_PERIOD")
            .unwrap()
            .value
            .as_deref(),
        Some("52s")
    );
    let sc = ct.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_ref().unwrap(),
        &["ALL"]
    );
    let psc = pod_spec(&t).security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(
        psc.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );
    assert_eq!(pod_spec(&t).automount_service_account_token, Some(false));
    // A read-only root needs a writable /tmp.
    assert!(ct
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .any(|m| m.mount_path == "/tmp"));
}

#[test]
fn tls_trust_extra_args_and_env_overrides() {
    let c = cluster(
        "{tls: {secretName: cert}, auth: {method: trust, secretName: creds}, extraArgs: ['--max-connections=50'], env: [{name: SQLD_REPLICATION_TOKEN, value: fixed}, {name: RUST_LOG, value: debug}]}",
    );
    let t = builders::statefulset::primary_statefulset(&c, &inputs())
        .spec
        .template;
    let args = sqld(&t).args.clone().unwrap();
    let joined = args.join(" ");
    assert!(joined.contains("--auth trust"));
    assert!(joined.contains("--tls-cert /etc/sqld/tls/tls.crt --tls-key /etc/sqld/tls/tls.key"));
    assert_eq!(
        args.last().map(String::as_str),
        Some("--max-connections=50")
    );
    assert!(
        env(&t, "SQLD_PASSWORD").is_none(),
        "trust needs no password"
    );
    let names: Vec<_> = sqld(&t)
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| *n == "SQLD_REPLICATION_TOKEN")
            .count(),
        1,
        "no duplicate env names"
    );
    assert_eq!(
        env(&t, "SQLD_REPLICATION_TOKEN").unwrap().value.as_deref(),
        Some("fixed")
    );
    let tls = pod_spec(&t)
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "tls")
        .unwrap();
    assert_eq!(
        tls.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("cert")
    );
    // The user's Secret is used; none is generated.
    assert!(builders::secret::credentials_secret(&c, &inputs().credentials.unwrap()).is_none());
}

#[test]
fn with_tls_replication_and_forwarded_writes_go_over_tls_to_a_port_of_their_own() {
    let c = cluster("{tls: {secretName: cert}}");
    let primary = builders::statefulset::primary_statefulset(&c, &inputs())
        .spec
        .template;
    let replica = builders::deployment::replica_deployment(&c, &inputs())
        .spec
        .template;
    let primary_args = sqld(&primary).args.clone().unwrap().join(" ");
    let replica_args = sqld(&replica).args.clone().unwrap().join(" ");
    let internal = format!("--internal-listen-addr 0.0.0.0:{}", naming::INTERNAL_PORT);
    assert!(primary_args.contains(&internal), "{primary_args}");
    assert!(replica_args.contains(&internal), "{replica_args}");
    let url = naming::primary_url(&c);
    assert!(
        url.starts_with("https://") && url.ends_with(&format!(":{}", naming::INTERNAL_PORT)),
        "{url}"
    );
    assert!(replica_args.contains(&format!("--primary-url {url}")));
    assert!(
        replica_args.contains("--primary-ca-file /etc/sqld/tls/ca.crt"),
        "{replica_args}"
    );
    assert!(!primary_args.contains("--primary-ca-file"));
    let ports: Vec<_> = sqld(&replica)
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| p.container_port)
        .collect();
    assert!(ports.contains(&naming::INTERNAL_PORT), "{ports:?}");
    // Without TLS the internal API stays on the HTTP port.
    let plain = cluster("{}");
    assert!(naming::primary_url(&plain).starts_with("http://"));
    let plain_primary = builders::statefulset::primary_statefulset(&plain, &inputs())
        .spec
        .template;
    assert!(!sqld(&plain_primary)
        .args
        .clone()
        .unwrap()
        .join(" ")
        .contains("--internal-listen-addr"));
}

#[test]
fn resources_override_per_role() {
    let c = cluster(
        "{resources: {limits: {memory: 1Gi}}, replicaResources: {limits: {memory: 256Mi}}}",
    );
    let p = builders::statefulset::primary_statefulset(&c, &inputs())
        .spec
        .template;
    let r = builders::deployment::replica_deployment(&c, &inputs())
        .spec
        .template;
    let mem = |t: &PodTemplateSpec| {
        sqld(t).resources.as_ref().unwrap().limits.as_ref().unwrap()["memory"]
            .0
            .clone()
    };
    assert_eq!(mem(&p), "1Gi");
    assert_eq!(mem(&r), "256Mi");
}

#[test]
fn config_hash_rolls_pods_only_when_their_inputs_change() {
    let base = cluster("replicas: 1");
    let p = |c: &SqldCluster, i: &Inputs| hash(&pod::pod_template(c, Role::Primary, i));
    let r = |c: &SqldCluster, i: &Inputs| hash(&pod::pod_template(c, Role::Replica, i));
    let i = inputs();
    assert_eq!(p(&base, &i), p(&base, &i), "stable");
    assert_ne!(p(&base, &i), r(&base, &i));

    let scaled = cluster("replicas: 5");
    assert_eq!(
        p(&scaled, &i),
        p(&base, &i),
        "scaling never restarts the primary"
    );
    let tuned = cluster("{replicas: 1, replication: {maxLagFrames: 1}}");
    assert_eq!(
        p(&tuned, &i),
        p(&base, &i),
        "replication tuning never restarts the primary"
    );
    assert_ne!(r(&tuned, &i), r(&base, &i));

    let image = cluster("{replicas: 1, image: 'sqld:2'}");
    assert_ne!(p(&image, &i), p(&base, &i));
    let rotated = Inputs {
        external_revision: "rev2".into(),
        ..inputs()
    };
    assert_ne!(
        p(&base, &rotated),
        p(&base, &i),
        "a changed Secret rolls the pods"
    );

    let mut restarted = base.clone();
    restarted.metadata.annotations = Some(
        [(
            naming::ANNOTATION_RESTART.to_string(),
            "2026-01-01T00:00:00Z".to_string(),
        )]
        .into(),
    );
    assert_ne!(p(&restarted, &i), p(&base, &i));
    assert_ne!(r(&restarted, &i), r(&base, &i));
}

#[test]
fn default_anti_affinity_and_user_affinity() {
    let t = pod::pod_template(&cluster("{}"), Role::Replica, &inputs());
    let anti = pod_spec(&t)
        .affinity
        .as_ref()
        .unwrap()
        .pod_anti_affinity
        .as_ref()
        .unwrap();
    let term = &anti
        .preferred_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        term.pod_affinity_term.topology_key,
        "kubernetes.io/hostname"
    );
    assert!(
        anti.required_during_scheduling_ignored_during_execution
            .is_none(),
        "never blocks scheduling"
    );
    let user = cluster("{affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: disk, operator: In, values: [ssd]}]}]}}}, nodeSelector: {pool: db}, priorityClassName: high}");
    let t = pod::pod_template(&user, Role::Primary, &inputs());
    let ps = pod_spec(&t);
    assert!(ps.affinity.as_ref().unwrap().pod_anti_affinity.is_none());
    assert_eq!(ps.node_selector.as_ref().unwrap()["pool"], "db");
    assert_eq!(ps.priority_class_name.as_deref(), Some("high"));
}

#[test]
fn replica_data_is_bounded_and_its_disk_requested() {
    let c = cluster("{replicas: 2, storage: {size: 20Gi}, resources: {requests: {cpu: 100m}}}");
    let d = builders::deployment::replica_deployment(&c, &inputs());
    let t = &d.spec.template;
    let data = pod_spec(t)
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "data")
        .unwrap();
    let limit = data.empty_dir.as_ref().unwrap().size_limit.as_ref();
    assert_eq!(limit.map(|q| q.0.as_str()), Some("20Gi"));
    let requests = sqld(t)
        .resources
        .as_ref()
        .unwrap()
        .requests
        .as_ref()
        .unwrap();
    assert_eq!(requests["ephemeral-storage"].0, "20Gi");
    assert_eq!(requests["cpu"].0, "100m", "the user's requests stay");
    // The user's own ephemeral-storage request wins; the primary's data is
    // on its volume claim, so it requests no node disk for it.
    let own = cluster("{replicas: 1, resources: {requests: {ephemeral-storage: 5Gi}}}");
    let t = builders::deployment::replica_deployment(&own, &inputs())
        .spec
        .template;
    assert_eq!(
        sqld(&t)
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["ephemeral-storage"]
            .0,
        "5Gi"
    );
    let p = pod::pod_template(&c, Role::Primary, &inputs());
    let req = sqld(&p)
        .resources
        .as_ref()
        .unwrap()
        .requests
        .as_ref()
        .unwrap();
    assert!(!req.contains_key("ephemeral-storage"));
}

/// Every sqld container, of every example and role, reads the replication
/// token (which sqld requires with a non-loopback HTTP listener) and the
/// password from the Secret by reference, and no secret value appears in
/// its args or as a literal env value.
#[test]
fn every_container_gets_its_secrets_by_reference_only() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for c in sqld_operator::render::parse_clusters(&text).unwrap() {
            for role in [Role::Primary, Role::Replica] {
                let t = pod::pod_template(&c, role, &inputs());
                let ct = sqld(&t);
                let token = env(&t, "SQLD_REPLICATION_TOKEN").expect("SQLD_REPLICATION_TOKEN");
                assert!(token.value.is_none(), "a literal token");
                let r = token
                    .value_from
                    .as_ref()
                    .unwrap()
                    .secret_key_ref
                    .as_ref()
                    .unwrap();
                assert_eq!(r.name, builders::secret::auth_secret_name(&c));
                assert_eq!(r.key, c.spec.auth.replication_token_key);
                for e in ct.env.as_ref().unwrap() {
                    if e.name.contains("PASSWORD") || e.name.contains("TOKEN") {
                        assert!(e.value.is_none(), "{} as a literal", e.name);
                    }
                }
                for a in ct.args.as_ref().unwrap() {
                    assert!(
                        !a.contains("pw")
                            && !a.contains("tok")
                            && !a.starts_with("--password")
                            && !a.starts_with("--replication-token"),
                        "a secret on the command line: {a}"
                    );
                }
                seen += 1;
            }
        }
    }
    assert!(seen >= 10, "{seen} containers checked");
}
