//! The pod template shared by the primary and the replicas: sqld's command
//! line (its flags are a contract with the data plane), probes, security
//! context, volumes and scheduling. The StatefulSet and Deployment builders
//! wrap what this returns.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, KeyToPath, Lifecycle, LifecycleHandler, PodAffinityTerm,
    PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext, SleepAction, Volume,
    VolumeMount, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::{hash, Inputs};
use crate::crd::{AuthMethod, BackendType, SqldCluster};
use crate::naming::{self, Role};

/// UID and GID sqld runs as (the distroless `nonroot` user).
const RUN_AS_USER: i64 = 65532;
/// Seconds the preStop hook waits so Services stop routing to a pod before
/// sqld receives SIGTERM.
const PRE_STOP_SLEEP_SECONDS: i64 = 5;
/// Seconds between sqld's own shutdown deadline and the kubelet's SIGKILL.
const SHUTDOWN_MARGIN_SECONDS: i64 = 3;
/// Startup allowance: a primary replaying a large log may take minutes
/// before `/health` answers; liveness only starts after it did.
const STARTUP_PERIOD_SECONDS: i32 = 5;
const STARTUP_FAILURE_THRESHOLD: i32 = 120;
/// Path of the cluster file inside the pod; FDB_CLUSTER_FILE points here.
pub const FDB_CLUSTER_FILE_PATH: &str = "/etc/foundationdb/fdb.cluster";
/// Name of the sqld container.
pub const CONTAINER_NAME: &str = "sqld";

/// The pod template of one role, with the config hash annotation computed
/// over everything else in it plus `inputs.external_revision`.
pub fn pod_template(c: &SqldCluster, role: Role, inputs: &Inputs) -> PodTemplateSpec {
    let spec = &c.spec;
    let mut labels = spec.pod_labels.clone();
    labels.extend(naming::role_labels(c, role));
    let mut annotations = spec.pod_annotations.clone();
    if let Some(at) = c.annotations().get(naming::ANNOTATION_RESTART) {
        annotations.insert(naming::ANNOTATION_RESTART.to_string(), at.clone());
    }
    let sqld = container(c, role);
    // Only the primary restores: replicas bootstrap from it.
    let init = (role == Role::Primary)
        .then(|| super::backup::restore_container(c, &sqld))
        .flatten();
    let pod = PodSpec {
        init_containers: init.map(|i| vec![i]),
        containers: vec![sqld],
        volumes: Some(volumes(c, role)),
        security_context: Some(pod_security_context()),
        termination_grace_period_seconds: Some(spec.termination_grace_period_seconds),
        // sqld never talks to the Kubernetes API.
        automount_service_account_token: Some(false),
        // Service env variables are noise for sqld and grow with the namespace.
        enable_service_links: Some(false),
        image_pull_secrets: non_empty(spec.image_pull_secrets.clone()),
        node_selector: non_empty_map(spec.node_selector.clone()),
        tolerations: non_empty(spec.tolerations.clone()),
        topology_spread_constraints: non_empty(spec.topology_spread_constraints.clone()),
        priority_class_name: spec.priority_class_name.clone(),
        affinity: Some(spec.affinity.clone().unwrap_or_else(|| default_affinity(c))),
        ..PodSpec::default()
    };
    let mut template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(pod),
    };
    let digest = hash::config_hash(&template, &inputs.external_revision);
    if let Some(a) = template
        .metadata
        .as_mut()
        .and_then(|m| m.annotations.as_mut())
    {
        a.insert(naming::ANNOTATION_CONFIG_HASH.to_string(), digest);
    }
    template
}

/// sqld's command line for a role, following its flag contract.
pub fn args(c: &SqldCluster, role: Role) -> Vec<String> {
    let spec = &c.spec;
    let mut args = vec![
        "--db-path".to_string(),
        naming::DB_PATH.to_string(),
        "--pg-listen-addr".to_string(),
        format!("0.0.0.0:{}", naming::PG_PORT),
        "--http-listen-addr".to_string(),
        format!("0.0.0.0:{}", naming::HTTP_PORT),
        "--auth".to_string(),
        spec.auth.method.as_str().to_string(),
    ];
    if role == Role::Replica {
        args.push("--primary-url".to_string());
        args.push(naming::primary_url(c));
    }
    if let Some(tls) = &spec.tls {
        args.push("--tls-cert".to_string());
        args.push(format!("{}/{}", naming::TLS_MOUNT, tls.cert_key));
        args.push("--tls-key".to_string());
        args.push(format!("{}/{}", naming::TLS_MOUNT, tls.key_key));
        // Replication and forwarded writes over TLS, on a port of their own.
        args.push("--internal-listen-addr".to_string());
        args.push(format!("0.0.0.0:{}", naming::INTERNAL_PORT));
        if role == Role::Replica {
            args.push("--primary-ca-file".to_string());
            args.push(format!("{}/{}", naming::TLS_MOUNT, tls.ca_key));
        }
    }
    // Only the primary archives: a replica's frames are its primary's.
    if role == Role::Primary {
        args.extend(super::backup::backup_args(c));
    }
    args.extend(spec.extra_args.iter().cloned());
    args
}

/// Environment of the sqld container. Secrets reach sqld only through
/// `secretKeyRef`, never in plain text in the pod spec. User entries in
/// `spec.env` replace the operator's of the same name (server-side apply
/// rejects duplicate names).
pub fn env(c: &SqldCluster, role: Role) -> Vec<EnvVar> {
    let spec = &c.spec;
    let secret = super::secret::auth_secret_name(c);
    let mut env = Vec::new();
    if spec.auth.method != AuthMethod::Trust {
        env.push(secret_env(
            "SQLD_PASSWORD",
            &secret,
            &spec.auth.password_key,
        ));
        // Optional: without the key sqld keeps its default user.
        let mut user = secret_env("SQLD_USER", &secret, super::secret::USERNAME_KEY);
        if let Some(r) = user
            .value_from
            .as_mut()
            .and_then(|v| v.secret_key_ref.as_mut())
        {
            r.optional = Some(true);
        }
        env.push(user);
    }
    env.push(secret_env(
        "SQLD_REPLICATION_TOKEN",
        &secret,
        &spec.auth.replication_token_key,
    ));
    // The preStop pause counts against the grace period; sqld gets the rest,
    // minus a margin, to finish running statements after SIGTERM.
    let shutdown = shutdown_seconds(c);
    env.push(plain_env(
        "SQLD_SHUTDOWN_GRACE_PERIOD",
        format!("{shutdown}s"),
    ));
    if role == Role::Replica {
        env.push(plain_env(
            "SQLD_MAX_REPLICA_LAG_FRAMES",
            spec.replication.max_lag_frames.to_string(),
        ));
    }
    if let (Role::Primary, Some(b)) = (role, &spec.backup) {
        env.extend(super::backup::store_env(b.credentials.as_ref()));
    }
    // With FoundationDB the pods mount the cluster file at
    // FDB_CLUSTER_FILE_PATH; sqld has no FoundationDB backend yet, so
    // nothing tells it to use one (it would refuse an unknown setting).
    for user in &spec.env {
        env.retain(|e| e.name != user.name);
        env.push(user.clone());
    }
    env
}

/// Seconds sqld has to shut down after SIGTERM: the grace period minus the
/// preStop pause and a margin before the kubelet's SIGKILL.
pub fn shutdown_seconds(c: &SqldCluster) -> i64 {
    (c.spec.termination_grace_period_seconds - PRE_STOP_SLEEP_SECONDS - SHUTDOWN_MARGIN_SECONDS)
        .max(1)
}

fn container(c: &SqldCluster, role: Role) -> Container {
    let spec = &c.spec;
    let mut mounts = vec![
        mount(naming::DATA_VOLUME, naming::DATA_MOUNT, false),
        mount("tmp", "/tmp", false),
    ];
    if spec.tls.is_some() {
        mounts.push(mount("tls", naming::TLS_MOUNT, true));
    }
    if spec.backend.type_ == BackendType::Foundationdb {
        mounts.push(mount("fdb", naming::FDB_MOUNT, true));
    }
    Container {
        name: CONTAINER_NAME.to_string(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        args: Some(args(c, role)),
        env: Some(env(c, role)),
        ports: Some(ports(c)),
        resources: resources(c, role),
        volume_mounts: Some(mounts),
        startup_probe: Some(http_probe(
            "/health",
            STARTUP_PERIOD_SECONDS,
            STARTUP_FAILURE_THRESHOLD,
        )),
        liveness_probe: Some(http_probe("/health", 10, 3)),
        readiness_probe: Some(http_probe("/ready", 5, 3)),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: PRE_STOP_SLEEP_SECONDS,
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        security_context: Some(container_security_context()),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Container::default()
    }
}

fn resources(c: &SqldCluster, role: Role) -> Option<ResourceRequirements> {
    let spec = &c.spec;
    let specific = match role {
        Role::Primary => &spec.primary_resources,
        Role::Replica => &spec.replica_resources,
    };
    let mut resources = specific.clone().or_else(|| spec.resources.clone());
    if data_on_empty_dir(c, role) {
        // The data emptyDir holds a whole copy of the database on the
        // node's disk: request that space, so the scheduler places the pod
        // where it fits instead of the kubelet evicting it (or its
        // neighbours) under DiskPressure later.
        let requests = resources
            .get_or_insert_with(ResourceRequirements::default)
            .requests
            .get_or_insert_with(BTreeMap::new);
        requests
            .entry(EPHEMERAL_STORAGE.to_string())
            .or_insert_with(|| Quantity(spec.storage.size.clone()));
    }
    resources
}

/// Resource name of node-local disk.
const EPHEMERAL_STORAGE: &str = "ephemeral-storage";

/// Whether the role keeps its database in an emptyDir (replicas always;
/// the primary with FoundationDB) rather than a volume claim.
fn data_on_empty_dir(c: &SqldCluster, role: Role) -> bool {
    role == Role::Replica || c.spec.backend.type_ != BackendType::Local
}

fn volumes(c: &SqldCluster, role: Role) -> Vec<Volume> {
    let spec = &c.spec;
    let mut volumes = Vec::new();
    if !data_on_empty_dir(c, role) {
        // The StatefulSet's volume claim template provides `data`; naming it
        // here would shadow the claim.
    } else {
        // Replicas bootstrap from the primary; with FoundationDB the
        // primary's disk is a cache. Either way, node-local space, bounded
        // by the size of the database (the primary's volume).
        let size_limit = Some(Quantity(spec.storage.size.clone()));
        volumes.push(Volume {
            name: naming::DATA_VOLUME.to_string(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit,
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    volumes.push(Volume {
        name: "tmp".to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    });
    if let Some(tls) = &spec.tls {
        volumes.push(Volume {
            name: "tls".to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(tls.secret_name.clone()),
                // Group-readable so fsGroup lets the non-root user read the key.
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    if let Some((name, key)) = super::foundationdb::cluster_file_source(c) {
        volumes.push(Volume {
            name: "fdb".to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name,
                items: Some(vec![KeyToPath {
                    key,
                    path: "fdb.cluster".to_string(),
                    ..KeyToPath::default()
                }]),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    volumes
}

/// A preferred (never blocking) anti-affinity that keeps instances of one
/// cluster, and so the replicas and the primary, on different nodes.
fn default_affinity(c: &SqldCluster) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(LabelSelector {
                            match_labels: Some(naming::cluster_selector(c)),
                            ..LabelSelector::default()
                        }),
                        topology_key: "kubernetes.io/hostname".to_string(),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}

fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS_USER),
        run_as_group: Some(RUN_AS_USER),
        fs_group: Some(RUN_AS_USER),
        fs_group_change_policy: Some("OnRootMismatch".to_string()),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String(naming::HTTP_PORT_NAME.to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(3),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn ports(c: &SqldCluster) -> Vec<ContainerPort> {
    let mut ports = vec![
        port(naming::PG_PORT_NAME, naming::PG_PORT),
        port(naming::HTTP_PORT_NAME, naming::HTTP_PORT),
    ];
    if c.spec.tls.is_some() {
        ports.push(port(naming::INTERNAL_PORT_NAME, naming::INTERNAL_PORT));
    }
    ports
}

fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: number,
        protocol: Some("TCP".to_string()),
        ..ContainerPort::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

pub(super) fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_string(),
                key: key.to_string(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

pub(super) fn plain_env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value),
        ..EnvVar::default()
    }
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn non_empty_map(m: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!m.is_empty()).then_some(m)
}
