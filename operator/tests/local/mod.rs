//! The local end-to-end tier: the pods `render` produces for a SqldCluster,
//! started as local processes of the real sqld binary with exactly their
//! container's args and env. Only what a node would supply is mapped:
//! listen addresses (`0.0.0.0:PORT`) become loopback ports, Service DNS
//! names become the loopback address of a pod the Service selects, mounted
//! paths move under a temporary directory, and `secretKeyRef`s read the
//! rendered Secret. Readiness is the pod's own readiness probe. When the
//! tests run as root, sqld runs as the pod's `runAsUser`/`runAsGroup` (via
//! `setpriv`), owning its volumes as `fsGroup` would make it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqld_operator::builders::Credentials;
use sqld_operator::render;

/// How long a pod gets to pass its readiness probe.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Tries to start a pod whose port was taken meanwhile.
const BIND_ATTEMPTS: usize = 3;

/// The sqld binary: `$SQLD_BIN`, else beside this test's target directory,
/// else `target/debug/sqld` of the workspace.
pub fn sqld_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SQLD_BIN") {
        return PathBuf::from(p);
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // target/debug/deps/<test> -> target/debug/sqld
        if let Some(dir) = exe.parent().and_then(Path::parent) {
            candidates.push(dir.join("sqld"));
        }
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/sqld"));
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!(
        "the sqld binary is missing (looked at {candidates:?}): build it first with \
         `cargo build -p sqld` (same CARGO_TARGET_DIR) or point SQLD_BIN at one"
    );
}

pub fn workspace_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// What fsGroup does for a pod's volumes: the pod's user can write them.
fn chown_tree(dir: &Path, uid: i64, gid: i64) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(dir)
        .status()
        .expect("chown");
    assert!(status.success(), "chown {}", dir.display());
    // The pod's user must reach its directory through the temporary root.
    for a in dir.ancestors().skip(1).take(2) {
        let _ = Command::new("chmod").arg("a+x").arg(a).status();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A blocking HTTP/1.1 GET; `None` when nothing answers.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Names of the samples in a Prometheus text exposition.
pub fn exported_names(exposition: &str) -> Vec<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_string))
        .collect()
}

/// One rendered pod (a workload's template), as a local process.
pub struct LocalPod {
    pub name: String,
    labels: BTreeMap<String, String>,
    container: Value,
    /// containerPort -> loopback address standing in for it.
    pub ports: BTreeMap<i64, SocketAddr>,
    /// containerPort name -> number.
    port_names: BTreeMap<String, i64>,
    root: PathBuf,
    /// The pod's runAsUser and runAsGroup, when set.
    run_as: Option<(i64, i64)>,
    child: Option<Child>,
}

impl LocalPod {
    pub fn addr(&self, container_port: i64) -> SocketAddr {
        self.ports[&container_port]
    }

    fn resolve_port(&self, port: &Value) -> i64 {
        match port {
            Value::String(name) => self.port_names[name],
            other => other.as_i64().expect("a port number"),
        }
    }

    /// The address and path of the container's readiness probe.
    pub fn readiness(&self) -> (SocketAddr, String) {
        self.probe("readinessProbe")
    }

    /// The address and path of one of the container's HTTP probes
    /// (`startupProbe`, `livenessProbe`, `readinessProbe`).
    pub fn probe(&self, which: &str) -> (SocketAddr, String) {
        let get = &self.container[which]["httpGet"];
        assert!(get.is_object(), "{}: no HTTP {which}", self.name);
        let port = self.resolve_port(&get["port"]);
        (
            self.addr(port),
            get["path"].as_str().unwrap_or("/").to_string(),
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("sqld.log")).unwrap_or_default()
    }
}

impl Drop for LocalPod {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A rendered SqldCluster running locally.
pub struct LocalCluster {
    pub namespace: String,
    pub pods: Vec<LocalPod>,
    services: Vec<Value>,
    secrets: Vec<Value>,
    root: PathBuf,
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.pods.clear();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl LocalCluster {
    /// Renders the one SqldCluster in `yaml` and starts its pods: the
    /// primary first, then each replica, each once ready.
    pub fn start(yaml: &str, credentials: Credentials) -> LocalCluster {
        let clusters = render::parse_clusters(yaml).expect("a SqldCluster");
        assert_eq!(clusters.len(), 1, "one SqldCluster");
        let c = &clusters[0];
        let objects = render::render_cluster(c, credentials).expect("render");
        let namespace = c.metadata.namespace.clone().unwrap_or("default".into());
        let root =
            std::env::temp_dir().join(format!("sqld-local-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&root).unwrap();
        let mut cluster = LocalCluster {
            namespace,
            pods: Vec::new(),
            services: objects
                .iter()
                .filter(|o| o["kind"] == "Service")
                .cloned()
                .collect(),
            secrets: objects
                .iter()
                .filter(|o| o["kind"] == "Secret")
                .cloned()
                .collect(),
            root,
        };
        // StatefulSet (the primary) before Deployment (the replicas).
        for kind in ["StatefulSet", "Deployment"] {
            for w in objects.iter().filter(|o| o["kind"] == kind) {
                let n = w["spec"]["replicas"].as_i64().unwrap_or(1);
                for i in 0..n {
                    let name = format!("{}-{i}", w["metadata"]["name"].as_str().unwrap());
                    cluster.add_pod(name, &w["spec"]["template"]);
                }
            }
        }
        for i in 0..cluster.pods.len() {
            cluster.launch(i);
        }
        cluster
    }

    fn add_pod(&mut self, name: String, template: &Value) {
        let container = template["spec"]["containers"][0].clone();
        let labels: BTreeMap<String, String> =
            serde_json::from_value(template["metadata"]["labels"].clone()).unwrap_or_default();
        let mut ports = BTreeMap::new();
        let mut port_names = BTreeMap::new();
        for p in container["ports"].as_array().cloned().unwrap_or_default() {
            let number = p["containerPort"].as_i64().unwrap();
            ports.insert(number, SocketAddr::from(([127, 0, 0, 1], free_port())));
            if let Some(n) = p["name"].as_str() {
                port_names.insert(n.to_string(), number);
            }
        }
        let root = self.root.join(&name);
        let sc = &template["spec"]["securityContext"];
        let run_as = sc["runAsUser"]
            .as_i64()
            .map(|u| (u, sc["runAsGroup"].as_i64().unwrap_or(u)));
        self.pods.push(LocalPod {
            name,
            labels,
            container,
            ports,
            port_names,
            root,
            run_as,
            child: None,
        });
    }

    /// The pod a Service routes to first (ready or not: a starting primary
    /// is reachable through its headless Service, as in the cluster).
    pub fn service_pods(&self, service: &str) -> Vec<&LocalPod> {
        let svc = self
            .services
            .iter()
            .find(|s| s["metadata"]["name"] == service)
            .unwrap_or_else(|| panic!("no Service {service}"));
        let selector: BTreeMap<String, String> =
            serde_json::from_value(svc["spec"]["selector"].clone()).unwrap_or_default();
        self.pods
            .iter()
            .filter(|p| selector.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
            .collect()
    }

    /// Loopback addresses of the pods behind `service:port`.
    pub fn endpoints(&self, service: &str, port: i64) -> Vec<SocketAddr> {
        let svc = self
            .services
            .iter()
            .find(|s| s["metadata"]["name"] == service)
            .unwrap();
        let sp = svc["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["port"] == port)
            .unwrap_or_else(|| panic!("Service {service} has no port {port}"));
        let target = sp.get("targetPort").cloned().unwrap_or(sp["port"].clone());
        self.service_pods(service)
            .into_iter()
            .map(|p| p.addr(p.resolve_port(&target)))
            .collect()
    }

    /// Replaces what only a node supplies: listen addresses, Service DNS
    /// names and mounted paths.
    fn localize(&self, pod: &LocalPod, value: &str) -> String {
        if let Some(port) = value.strip_prefix("0.0.0.0:") {
            let port: i64 = port.parse().unwrap();
            return pod.addr(port).to_string();
        }
        if value.starts_with('/') {
            return format!("{}{value}", pod.root.display());
        }
        let mut out = value.to_string();
        for svc in &self.services {
            let name = svc["metadata"]["name"].as_str().unwrap();
            for ports in svc["spec"]["ports"].as_array().unwrap() {
                let port = ports["port"].as_i64().unwrap();
                for host in [
                    format!("{name}.{}.svc.cluster.local:{port}", self.namespace),
                    format!("{name}.{}.svc:{port}", self.namespace),
                ] {
                    if out.contains(&host) {
                        let addr = self.endpoints(name, port)[0];
                        out = out.replace(&host, &addr.to_string());
                    }
                }
            }
        }
        out
    }

    fn secret_value(&self, name: &str, key: &str) -> Option<String> {
        let s = self
            .secrets
            .iter()
            .find(|s| s["metadata"]["name"] == name)?;
        s["stringData"][key].as_str().map(str::to_string)
    }

    /// The container's environment, resolved as the kubelet would.
    pub fn env_of(&self, pod: &LocalPod) -> Vec<(String, String)> {
        let mut env = Vec::new();
        for e in pod.container["env"].as_array().cloned().unwrap_or_default() {
            let name = e["name"].as_str().unwrap().to_string();
            if let Some(v) = e["value"].as_str() {
                env.push((name, self.localize(pod, v)));
            } else if let Some(r) = e["valueFrom"]["secretKeyRef"].as_object() {
                let secret = r["name"].as_str().unwrap();
                let key = r["key"].as_str().unwrap();
                match self.secret_value(secret, key) {
                    Some(v) => env.push((name, v)),
                    None if r.get("optional") == Some(&Value::Bool(true)) => {}
                    None => panic!("{}: Secret {secret} has no key {key}", pod.name),
                }
            } else {
                panic!(
                    "{}: env {name} has a source this tier cannot supply",
                    pod.name
                );
            }
        }
        env
    }

    /// Starts pod `i` and waits for its readiness probe. A free port can be
    /// taken by another process between our probe and sqld's bind: then
    /// the pod gets fresh ports and another try.
    fn launch(&mut self, i: usize) {
        for attempt in 1..=BIND_ATTEMPTS {
            match self.try_launch(i) {
                Ok(()) => return,
                Err(log) if attempt < BIND_ATTEMPTS && log.contains("in use") => {
                    for addr in self.pods[i].ports.values_mut() {
                        *addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
                    }
                }
                Err(log) => panic!("{} did not start:\n{log}", self.pods[i].name),
            }
        }
    }

    fn try_launch(&mut self, i: usize) -> Result<(), String> {
        let pod = &self.pods[i];
        for m in pod.container["volumeMounts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let path = m["mountPath"].as_str().unwrap();
            std::fs::create_dir_all(format!("{}{path}", pod.root.display())).unwrap();
        }
        let args: Vec<String> = pod.container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| self.localize(pod, a.as_str().unwrap()))
            .collect();
        let env = self.env_of(pod);
        let log = std::fs::File::create(pod.root.join("sqld.log")).unwrap();
        let mut cmd = match (pod.run_as, is_root()) {
            (Some((uid, gid)), true) => {
                chown_tree(&pod.root, uid, gid);
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg(sqld_bin());
                c
            }
            _ => Command::new(sqld_bin()),
        };
        let child = cmd
            .args(&args)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start sqld");
        self.pods[i].child = Some(child);
        let pod = &mut self.pods[i];
        let (addr, path) = pod.readiness();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(Ok(Some(status))) = pod.child.as_mut().map(|c| c.try_wait()) {
                pod.child = None;
                return Err(format!(
                    "exited ({status}) with args {args:?}:\n{}",
                    pod.log()
                ));
            }
            if let Some((200, _)) = http_get(addr, &path) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not ready within {READY_TIMEOUT:?}:\n{}",
                    pod.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pod(&self, name: &str) -> &LocalPod {
        self.pods
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no pod {name}"))
    }
}
