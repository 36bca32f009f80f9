//! A fake Kubernetes API server for reconcile tests, in kube-rs' tower-test
//! pattern: the `Client` talks to a mock service whose other end is served
//! here from an in-memory object store. It understands what the operator
//! uses (GET, POST, PUT with resourceVersion checks, server-side apply,
//! JSON merge patch, DELETE, API discovery), records every request for
//! assertions, and can be told to fail requests to exercise retries.

#![allow(dead_code)]

pub mod scenario;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

/// One request the client made.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

/// An injected failure: requests whose method matches and whose path
/// contains `path` get `code`, `times` times.
#[derive(Clone, Debug)]
struct Failure {
    method: String,
    path: String,
    code: u16,
    times: usize,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    log: Vec<Recorded>,
    failures: Vec<Failure>,
    /// group/version -> kinds served (for discovery of optional CRDs).
    served: HashMap<String, Vec<(String, String)>>,
    next_uid: u64,
    next_rv: u64,
    /// Watch requests received (they are never answered).
    watches: usize,
    /// (method, path part) of requests to leave unanswered, as a hung
    /// connection to the API server would.
    stalls: Vec<(String, String)>,
}

/// Handle on the fake server.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

impl FakeApi {
    pub fn new() -> Self {
        FakeApi::default()
    }

    /// A client whose requests this fake answers (needs a tokio runtime).
    pub fn client(&self) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let this = self.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                if request
                    .uri()
                    .query()
                    .is_some_and(|q| q.contains("watch=true"))
                {
                    // A watch that never reports anything: hold the
                    // response open until the test ends.
                    this.state.lock().unwrap().watches += 1;
                    tokio::spawn(async move {
                        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                        drop(send);
                    });
                    continue;
                }
                let stalled = {
                    let s = this.state.lock().unwrap();
                    let (m, p) = (
                        request.method().to_string(),
                        request.uri().path().to_string(),
                    );
                    s.stalls
                        .iter()
                        .any(|(sm, sp)| *sm == m && p.contains(sp.as_str()))
                };
                if stalled {
                    tokio::spawn(async move {
                        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                        drop(send);
                    });
                    continue;
                }
                let response = this.handle(request).await;
                send.send_response(response);
            }
        });
        Client::new(service, "default")
    }

    /// Declares an optional API group/version with `(kind, plural)` resources.
    pub fn serve(&self, group_version: &str, kinds: &[(&str, &str)]) {
        self.state.lock().unwrap().served.insert(
            group_version.to_string(),
            kinds
                .iter()
                .map(|(k, p)| (k.to_string(), p.to_string()))
                .collect(),
        );
    }

    /// Makes the next `times` matching requests fail with `code`.
    pub fn fail(&self, method: &str, path: &str, code: u16, times: usize) {
        self.state.lock().unwrap().failures.push(Failure {
            method: method.into(),
            path: path.into(),
            code,
            times,
        });
    }

    /// Leaves matching requests unanswered until `unstall`.
    pub fn stall(&self, method: &str, path: &str) {
        self.state
            .lock()
            .unwrap()
            .stalls
            .push((method.into(), path.into()));
    }

    pub fn unstall(&self) {
        self.state.lock().unwrap().stalls.clear();
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }

    /// Stores an object as-is (the cluster state before a reconcile).
    pub fn put(&self, path: &str, obj: Value) {
        self.state
            .lock()
            .unwrap()
            .objects
            .insert(path.to_string(), obj);
    }

    /// Changes a stored object in place (drift, or a controller's status).
    pub fn edit(&self, path: &str, f: impl FnOnce(&mut Value)) {
        let mut s = self.state.lock().unwrap();
        let obj = s
            .objects
            .get_mut(path)
            .unwrap_or_else(|| panic!("no object at {path}"));
        f(obj);
    }

    /// Number of watch requests received.
    pub fn watches(&self) -> usize {
        self.state.lock().unwrap().watches
    }

    pub fn log(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    /// "METHOD path" of every logged request, for order assertions.
    pub fn calls(&self) -> Vec<String> {
        self.log()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// Logged writes (anything but GET).
    pub fn writes(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| !c.starts_with("GET "))
            .collect()
    }

    /// Events posted or patched, as (type, reason).
    pub fn events(&self) -> Vec<(String, String)> {
        self.log()
            .iter()
            .filter(|r| r.path.contains("/events") && r.method != "GET")
            .map(|r| {
                (
                    r.body["type"].as_str().unwrap_or("").to_string(),
                    r.body["reason"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    async fn handle(&self, request: Request<Body>) -> Response<Body> {
        let method = request.method().to_string();
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or("").to_string();
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let mut s = self.state.lock().unwrap();
        s.log.push(Recorded {
            method: method.clone(),
            path: path.clone(),
            query,
            content_type: content_type.clone(),
            body: body.clone(),
        });
        if let Some(f) = s
            .failures
            .iter_mut()
            .find(|f| f.times > 0 && f.method == method && path.contains(&f.path))
        {
            f.times -= 1;
            let code = f.code;
            return status(code, "injected failure");
        }
        match method.as_str() {
            "GET" => s.get(&path),
            "POST" => s.create(&path, body),
            "PUT" => s.replace(&path, body),
            "PATCH" if content_type.starts_with("application/apply-patch") => s.apply(&path, body),
            "PATCH" => s.merge(&path, body),
            "DELETE" => match s.objects.remove(&path) {
                Some(_) => respond(
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                ),
                None => status(404, "not found"),
            },
            _ => status(405, "method not allowed"),
        }
    }
}

impl State {
    fn get(&self, path: &str) -> Response<Body> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        if parts.len() == 3 && parts[0] == "apis" {
            let gv = format!("{}/{}", parts[1], parts[2]);
            return match self.served.get(&gv) {
                Some(kinds) => respond(
                    200,
                    json!({
                        "kind": "APIResourceList",
                        "apiVersion": "v1",
                        "groupVersion": gv,
                        "resources": kinds.iter().map(|(k, p)| json!({
                            "name": p, "singularName": "", "namespaced": true, "kind": k, "verbs": ["get", "create", "patch", "delete"],
                        })).collect::<Vec<_>>(),
                    }),
                ),
                None => status(404, "group not served"),
            };
        }
        if parts == ["version"] {
            return respond(
                200,
                json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0"}),
            );
        }
        if let Some(o) = self.objects.get(path) {
            return respond(200, o.clone());
        }
        match self.list(&parts) {
            Some(list) => respond(200, list),
            None => status(404, "not found"),
        }
    }

    /// A collection GET (`.../<resource>` across all or one namespace):
    /// every stored object of that resource.
    fn list(&self, parts: &[&str]) -> Option<Value> {
        let (prefix, rest) = match parts {
            ["api", "v1", rest @ ..] => ("/api/v1".to_string(), rest),
            ["apis", g, v, rest @ ..] => (format!("/apis/{g}/{v}"), rest),
            _ => return None,
        };
        let (ns, resource) = match rest {
            [resource] => (None, *resource),
            ["namespaces", ns, resource] => (Some(*ns), *resource),
            _ => return None,
        };
        let items: Vec<Value> = self
            .objects
            .iter()
            .filter(|(p, _)| {
                let Some(tail) = p.strip_prefix(&prefix) else {
                    return false;
                };
                let t: Vec<&str> = tail.trim_matches('/').split('/').collect();
                match t.as_slice() {
                    ["namespaces", n, r, _] => *r == resource && ns.is_none_or(|ns| ns == *n),
                    [r, _] => *r == resource && ns.is_none(),
                    _ => false,
                }
            })
            .map(|(_, o)| o.clone())
            .collect();
        Some(json!({
            "kind": "List", "apiVersion": "v1",
            "metadata": {"resourceVersion": format!("{}", 1000 + self.next_rv)},
            "items": items,
        }))
    }

    fn create(&mut self, collection: &str, mut body: Value) -> Response<Body> {
        let name = body["metadata"]["name"].as_str().unwrap_or("").to_string();
        let path = format!("{collection}/{name}");
        if self.objects.contains_key(&path) {
            return status(409, "already exists");
        }
        self.stamp_new(&mut body);
        normalize_secret(&mut body);
        self.objects.insert(path, body.clone());
        respond(201, body)
    }

    fn replace(&mut self, path: &str, mut body: Value) -> Response<Body> {
        let Some(old) = self.objects.get(path) else {
            return status(404, "not found");
        };
        if body["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"] {
            return status(409, "resourceVersion conflict");
        }
        self.next_rv += 1;
        body["metadata"]["resourceVersion"] = json!(format!("{}", 1000 + self.next_rv));
        self.objects.insert(path.to_string(), body.clone());
        respond(200, body)
    }

    /// Server-side apply, simplified: the applied object replaces spec and
    /// metadata; status stays unless the status subresource is applied.
    fn apply(&mut self, path: &str, body: Value) -> Response<Body> {
        if let Some(base) = path.strip_suffix("/status") {
            let Some(obj) = self.objects.get_mut(base) else {
                return status(404, "not found");
            };
            obj["status"] = body["status"].clone();
            return respond(200, obj.clone());
        }
        let mut new = body;
        match self.objects.get(path) {
            Some(old) => {
                for key in ["uid", "creationTimestamp", "generation", "resourceVersion"] {
                    new["metadata"][key] = old["metadata"][key].clone();
                }
                if let Some(st) = old.get("status") {
                    new["status"] = st.clone();
                }
                if old.get("spec") != new.get("spec") {
                    let g = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
                    new["metadata"]["generation"] = json!(g);
                }
                self.next_rv += 1;
                new["metadata"]["resourceVersion"] = json!(format!("{}", 1000 + self.next_rv));
            }
            None => self.stamp_new(&mut new),
        }
        self.objects.insert(path.to_string(), new.clone());
        respond(200, new)
    }

    fn merge(&mut self, path: &str, patch: Value) -> Response<Body> {
        let Some(obj) = self.objects.get_mut(path) else {
            return status(404, "not found");
        };
        merge(obj, &patch);
        respond(200, obj.clone())
    }

    fn stamp_new(&mut self, obj: &mut Value) {
        self.next_uid += 1;
        self.next_rv += 1;
        obj["metadata"]["uid"] = json!(format!("uid-{}", self.next_uid));
        obj["metadata"]["resourceVersion"] = json!(format!("{}", 1000 + self.next_rv));
        obj["metadata"]["generation"] = json!(1);
        obj["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
}

/// The API server stores Secrets' stringData as base64 data.
fn normalize_secret(obj: &mut Value) {
    if obj["kind"] != "Secret" {
        return;
    }
    if let Some(Value::Object(sd)) = obj.as_object_mut().and_then(|o| o.remove("stringData")) {
        let data: BTreeMap<String, k8s_openapi::ByteString> = sd
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    k8s_openapi::ByteString(v.as_str().unwrap_or("").as_bytes().to_vec()),
                )
            })
            .collect();
        obj["data"] = serde_json::to_value(data).unwrap();
    }
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    if let Value::Object(p) = patch {
        if !target.is_object() {
            *target = json!({});
        }
        let t = target.as_object_mut().unwrap();
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    } else {
        *target = patch.clone();
    }
}

fn respond(code: u16, body: Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn status(code: u16, message: &str) -> Response<Body> {
    let reason = match code {
        404 => "NotFound",
        409 => "Conflict",
        _ => "InternalError",
    };
    respond(
        code,
        json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": message, "reason": reason, "code": code,
        }),
    )
}
