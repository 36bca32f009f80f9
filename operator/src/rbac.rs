//! The permissions the operator needs, kept next to the controller that
//! uses them. `deploy/operator/rbac.yaml` (ClusterRole) and
//! `deploy/operator/namespaced/rbac.yaml` (Role, for `--namespace`) are
//! generated from this list (a test fails when they are stale), and the
//! reconcile tests check every request the reconciler makes against it.

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use kube::api::ObjectMeta;

/// Name of the operator's ServiceAccount, roles and bindings.
pub const NAME: &str = "sqld-operator";
/// Namespace the manifests in `deploy/operator` install the operator into.
pub const DEFAULT_NAMESPACE: &str = "sqld-system";

/// Access to one group's resources.
#[derive(Clone, Debug)]
pub struct Rule {
    pub group: &'static str,
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
    /// Why the operator needs it.
    pub why: &'static str,
}

/// What the controller reads and writes in the namespaces it manages.
/// `create` accompanies `patch` wherever server-side apply may create the
/// object (the API server authorizes such a patch as a create too).
pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            group: "sqld.dev",
            resources: &["sqldclusters"],
            verbs: &["list", "watch"],
            why: "the watched resource",
        },
        Rule {
            group: "sqld.dev",
            resources: &["sqldclusters/status"],
            verbs: &["patch"],
            why: "status",
        },
        Rule {
            group: "sqld.dev",
            resources: &["sqldclusters/finalizers"],
            verbs: &["update"],
            why: "children's owner references with blockOwnerDeletion (checked where OwnerReferencesPermissionEnforcement is on)",
        },
        Rule {
            group: "apps",
            resources: &["statefulsets"],
            verbs: &["get", "list", "watch", "create", "patch"],
            why: "the primary (get: compare the running template and volume claims)",
        },
        Rule {
            group: "apps",
            resources: &["deployments"],
            verbs: &["get", "list", "watch", "create", "patch"],
            why: "the replicas (get: tell a roll from a scale, for Events)",
        },
        Rule {
            group: "",
            resources: &["services"],
            verbs: &["list", "watch", "create", "patch"],
            why: "rw, ro, r and headless Services",
        },
        Rule {
            group: "networking.k8s.io",
            resources: &["networkpolicies"],
            verbs: &["get", "create", "patch", "delete"],
            why: "who may reach the sqld pods (get: delete only our own)",
        },
        Rule {
            group: "policy",
            resources: &["poddisruptionbudgets"],
            verbs: &["get", "list", "watch", "create", "patch", "delete"],
            why: "the replicas' budget, removed below two replicas (get: only when ours)",
        },
        Rule {
            group: "",
            resources: &["pods"],
            verbs: &["get", "list", "delete"],
            why: "replace a broken primary pod of an old revision, which OrderedReady never replaces; list: tell a stalled replica rollout's failing pods from unscheduled ones",
        },
        Rule {
            group: "",
            resources: &["secrets"],
            verbs: &["get", "create"],
            why: "read referenced Secrets, create generated credentials once",
        },
        Rule {
            group: "",
            resources: &["configmaps"],
            verbs: &["get", "create", "patch"],
            why: "FoundationDB cluster files",
        },
        Rule {
            group: "",
            resources: &["persistentvolumeclaims"],
            verbs: &["get", "patch"],
            why: "grow the primary's volume, set its owner as storage.reclaimPolicy says",
        },
        Rule {
            group: "monitoring.coreos.com",
            resources: &["podmonitors", "servicemonitors"],
            verbs: &["get", "create", "patch", "delete"],
            why: "scrape configuration (get: delete only our own)",
        },
        Rule {
            group: "apps.foundationdb.org",
            resources: &["foundationdbclusters"],
            verbs: &["create", "patch"],
            why: "managed FoundationDB",
        },
        Rule {
            group: "events.k8s.io",
            resources: &["events"],
            verbs: &["create", "patch"],
            why: "Events (patch: repeated events)",
        },
    ]
}

/// Cluster-scoped reads, granted only by the cluster-wide ClusterRole (a
/// Role cannot grant them; the operator then does without).
pub fn cluster_scoped_rules() -> Vec<Rule> {
    vec![Rule {
        group: "storage.k8s.io",
        resources: &["storageclasses"],
        verbs: &["get"],
        why: "whether the primary's storage class allows volume expansion",
    }]
}

/// What leader election needs, in the operator's own namespace only.
pub fn leader_election_rules() -> Vec<Rule> {
    vec![Rule {
        group: "coordination.k8s.io",
        resources: &["leases"],
        verbs: &["get", "create", "update"],
        why: "leader election",
    }]
}

/// Whether `rules` grant `verb` on `group`/`resource`.
pub fn allows(rules: &[Rule], group: &str, resource: &str, verb: &str) -> bool {
    rules
        .iter()
        .any(|r| r.group == group && r.resources.contains(&resource) && r.verbs.contains(&verb))
}

/// The (group, resource, verb) an API request is authorized as, or `None`
/// for discovery and other non-resource requests.
pub fn request_attributes(method: &str, path: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] if !rest.is_empty() => rest,
        rest => rest,
    };
    let (resource, named) = match rest {
        [] => return None,
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, sub, ..] => (format!("{resource}/{sub}"), true),
    };
    let verb = match (method, named) {
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", _) => "delete",
        _ => return None,
    };
    Some((group.to_string(), resource, verb.to_string()))
}

fn policy_rules(rules: &[Rule]) -> Vec<PolicyRule> {
    rules
        .iter()
        .map(|r| PolicyRule {
            api_groups: Some(vec![r.group.to_string()]),
            resources: Some(r.resources.iter().map(|s| s.to_string()).collect()),
            verbs: r.verbs.iter().map(|s| s.to_string()).collect(),
            ..PolicyRule::default()
        })
        .collect()
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some([("app.kubernetes.io/name".to_string(), NAME.to_string())].into()),
        ..ObjectMeta::default()
    }
}

fn subject(namespace: &str) -> Vec<Subject> {
    vec![Subject {
        kind: "ServiceAccount".to_string(),
        name: NAME.to_string(),
        namespace: Some(namespace.to_string()),
        ..Subject::default()
    }]
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: Some("rbac.authorization.k8s.io".to_string()),
        kind: kind.to_string(),
        name: name.to_string(),
    }
}

fn leader_role(namespace: &str) -> (Role, RoleBinding) {
    let name = format!("{NAME}-leader-election");
    (
        Role {
            metadata: meta(&name, Some(namespace)),
            rules: Some(policy_rules(&leader_election_rules())),
        },
        RoleBinding {
            metadata: meta(&name, Some(namespace)),
            role_ref: role_ref("Role", &name),
            subjects: Some(subject(namespace)),
        },
    )
}

fn to_yaml(header: &str, docs: [String; 4]) -> String {
    let mut out = format!("# Generated from operator/src/rbac.rs; do not edit.\n# {header}\n");
    for d in docs {
        out.push_str("---\n");
        out.push_str(&d);
    }
    out
}

/// Cluster-wide RBAC: a ClusterRole over every namespace, plus the leader
/// election Role in the operator's namespace.
pub fn cluster_manifests(namespace: &str) -> Result<String, serde_yaml::Error> {
    let mut all = rules();
    all.extend(cluster_scoped_rules());
    let role = ClusterRole {
        metadata: meta(NAME, None),
        rules: Some(policy_rules(&all)),
        ..ClusterRole::default()
    };
    let binding = ClusterRoleBinding {
        metadata: meta(NAME, None),
        role_ref: role_ref("ClusterRole", NAME),
        subjects: Some(subject(namespace)),
    };
    let (lr, lb) = leader_role(namespace);
    let docs = [
        serde_yaml::to_string(&role)?,
        serde_yaml::to_string(&binding)?,
        serde_yaml::to_string(&lr)?,
        serde_yaml::to_string(&lb)?,
    ];
    Ok(to_yaml("The operator watching every namespace.", docs))
}

/// Namespaced RBAC for `run --namespace NS`: the same rules as a Role in the
/// watched namespace (here the operator's own), so no cluster-wide grant.
pub fn namespaced_manifests(namespace: &str) -> Result<String, serde_yaml::Error> {
    let role = Role {
        metadata: meta(NAME, Some(namespace)),
        rules: Some(policy_rules(&rules())),
    };
    let binding = RoleBinding {
        metadata: meta(NAME, Some(namespace)),
        role_ref: role_ref("Role", NAME),
        subjects: Some(subject(namespace)),
    };
    let (lr, lb) = leader_role(namespace);
    let docs = [
        serde_yaml::to_string(&role)?,
        serde_yaml::to_string(&binding)?,
        serde_yaml::to_string(&lr)?,
        serde_yaml::to_string(&lb)?,
    ];
    Ok(to_yaml(
        "The operator watching only its own namespace (run --namespace).",
        docs,
    ))
}

/// The rules alone (`operator`: the reconciler's, `leaderElection`: the
/// Lease's), for the Helm chart, which builds its own Role or ClusterRole
/// around them (`charts/sqld-operator/files/rbac-rules.yaml`).
pub fn chart_rules() -> Result<String, serde_yaml::Error> {
    let mut doc = std::collections::BTreeMap::new();
    doc.insert("operator", policy_rules(&rules()));
    doc.insert("leaderElection", policy_rules(&leader_election_rules()));
    doc.insert("clusterScoped", policy_rules(&cluster_scoped_rules()));
    Ok(format!(
        "# Generated from operator/src/rbac.rs; do not edit.\n{}",
        serde_yaml::to_string(&doc)?
    ))
}
