//! The internal HTTP API (replication and forwarded writes) as an attacker
//! on the network meets it: never open unless `--dev`, the token compared
//! exactly, a primary that would listen beyond loopback without a token
//! refuses to start, and answers bounded whatever a poll asks for.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::{free_port, Sqld};

/// A password-authenticated primary: what a user runs without `--dev`.
fn secured_primary(extra: &[&str]) -> Sqld {
    let mut args = vec!["--auth", "password", "--password", "pw"];
    args.extend_from_slice(extra);
    Sqld::start_with(&args)
}

/// One HTTP request with an optional bearer token: (status, body).
fn request(
    sqld: &Sqld,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(sqld.http_addr).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let status = std::str::from_utf8(&out[9..12]).unwrap().parse().unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (status, out[split..].to_vec())
}

fn generated_token(primary: &Sqld) -> String {
    std::fs::read_to_string(primary.db_dir.join("replication-token"))
        .expect("the primary keeps its generated token")
        .trim()
        .to_owned()
}

#[tokio::test]
async fn without_dev_every_internal_endpoint_requires_the_token() {
    let primary = secured_primary(&[]);
    let token = generated_token(&primary);
    assert_eq!(token.len(), 64);
    let execute = r#"{"session":null,"begin_after_frame":null,"sql":"create table stolen(x)","params":[],"column_types":null}"#;
    for (method, path, body) in [
        ("GET", "/v1/replication/info", ""),
        ("GET", "/v1/replication/snapshot", ""),
        ("GET", "/v1/replication/frames?after=0", ""),
        ("POST", "/v1/replication/execute", execute),
        ("GET", "/v1/admin/status", ""),
        ("POST", "/v1/admin/promote", ""),
        ("POST", "/v1/admin/fence?epoch=9", ""),
        (
            "POST",
            "/v1/admin/follow?primary_url=http://127.0.0.1:1",
            "",
        ),
    ] {
        for wrong in [None, Some(""), Some("x"), Some(&token[..63])] {
            let (status, _) = request(&primary, method, path, wrong, body);
            assert_eq!(status, 401, "{method} {path} with {wrong:?}");
        }
        // Same length, last character changed.
        let last = if token.ends_with('0') { '1' } else { '0' };
        let near_miss = format!("{}{last}", &token[..63]);
        assert_eq!(
            request(&primary, method, path, Some(&near_miss), body).0,
            401
        );
    }
    // Nothing the unauthenticated execute asked for happened.
    let c = primary
        .connect_with(&format!(
            "host=127.0.0.1 port={} user=sqld password=pw dbname=sqld",
            primary.port()
        ))
        .await;
    let found = c
        .query_opt("select name from sqlite_master where name = 'stolen'", &[])
        .await
        .unwrap();
    assert!(found.is_none(), "the forwarded write ran without a token");
    // Nor did the unauthenticated fence or follow.
    let (status, body) = request(&primary, "GET", "/v1/admin/status", Some(&token), "");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 200);
    assert!(body.contains(r#""fenced":false"#), "{body}");
    assert!(body.contains(r#""role":"primary""#), "{body}");
    c.batch_execute("create table still_writable(x)")
        .await
        .unwrap();
    // With the token the API answers; health and metrics stay open.
    assert_eq!(
        request(&primary, "GET", "/v1/replication/info", Some(&token), "").0,
        200
    );
    for open in ["/health", "/ready", "/metrics"] {
        assert_eq!(primary.http_get(open).0, 200, "{open}");
    }
    let (_, metrics) = primary.http_get("/metrics");
    assert!(!metrics.contains(&token), "metrics reveal the token");
}

#[tokio::test]
async fn a_replica_follows_with_the_token_file_and_refuses_to_start_without_one() {
    let primary = secured_primary(&[]);
    let token_file = primary.db_dir.join("replication-token");
    let url = format!("http://{}", primary.http_addr);
    let replica = Sqld::start_with(&[
        "--auth",
        "password",
        "--password",
        "pw",
        "--primary-url",
        &url,
        "--replication-token-file",
        token_file.to_str().unwrap(),
        "--max-replica-lag-frames",
        "0",
    ]);
    replica.wait_ready();

    let refused = refusal(&["--password", "pw", "--primary-url", &url], LOOPBACK);
    assert!(refused.contains("replication token"), "{refused}");
}

#[test]
fn a_primary_beyond_loopback_without_a_token_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let refused = refusal(
        &["--password", "pw", "--db-path", db.to_str().unwrap()],
        "0.0.0.0",
    );
    assert!(refused.contains("without a token"), "{refused}");
    assert!(
        !db.join("replication-token").exists(),
        "no token is generated for a listener replicas elsewhere could not use"
    );
}

const LOOPBACK: &str = "127.0.0.1";

/// Starts sqld (on a fresh database, unless `args` names one, and free
/// ports, its HTTP listener on `http_host`) expecting it to refuse to
/// start: what it said.
fn refusal(args: &[&str], http_host: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sqld"));
    if !args.contains(&"--db-path") {
        cmd.arg("--db-path").arg(dir.path().join("db"));
    }
    cmd.args(args)
        .arg("--pg-listen-addr")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--http-listen-addr")
        .arg(format!("{http_host}:{}", free_port()))
        .env("SQLD_LOG", "warn");
    let out = common::run_bounded(cmd, Duration::from_secs(20), "built by cargo");
    assert!(!out.status.success(), "it started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn a_frames_answer_is_bounded_whatever_max_frames_asks() {
    let primary = Sqld::start_with(&["--dev", "--snapshot-threshold-frames", "1000000"]);
    let c = primary.connect().await;
    c.batch_execute("create table big(b blob)").await.unwrap();
    // 60 transactions of about 100 pages each: some 6,000 frames.
    for _ in 0..60 {
        c.batch_execute("insert into big values (randomblob(400000))")
            .await
            .unwrap();
    }
    let (status, body) = request(
        &primary,
        "GET",
        "/v1/replication/frames?after=0&max_frames=1000000000",
        None,
        "",
    );
    assert_eq!(status, 200);
    let frames = body.len() / (20 + 4096);
    assert!(
        (4096..4096 + 200).contains(&frames),
        "one answer carried {frames} frames"
    );
}

/// A CA, and a certificate for 127.0.0.1 signed by it, made with openssl.
struct Certs {
    _dir: tempfile::TempDir,
    ca: std::path::PathBuf,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

fn openssl(args: &[&str], dir: &std::path::Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is needed to make test certificates");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_certs() -> Certs {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let quiet = ["-days", "1", "-nodes"];
    openssl(
        &[
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-subj",
                "/CN=test-ca",
            ],
            &quiet[..],
            &["-keyout", "ca.key", "-out", "ca.crt"],
        ]
        .concat(),
        p,
    );
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        p,
    );
    std::fs::write(p.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            "server.crt",
            "-extfile",
            "san.ext",
        ],
        p,
    );
    Certs {
        ca: p.join("ca.crt"),
        cert: p.join("server.crt"),
        key: p.join("server.key"),
        _dir: dir,
    }
}

#[tokio::test]
async fn replication_and_forwarding_over_tls_verify_the_primary() {
    let certs = make_certs();
    let internal = format!("127.0.0.1:{}", free_port());
    let primary = Sqld::start_with(&[
        "--dev",
        "--replication-token",
        "s3cret",
        "--tls-cert",
        certs.cert.to_str().unwrap(),
        "--tls-key",
        certs.key.to_str().unwrap(),
        "--internal-listen-addr",
        &internal,
    ]);
    primary
        .connect()
        .await
        .batch_execute("create table t(a integer); insert into t values (1)")
        .await
        .unwrap();
    // The internal API left the plain HTTP listener.
    assert_eq!(
        request(&primary, "GET", "/v1/replication/info", Some("s3cret"), "").0,
        404
    );
    let url = format!("https://{internal}");
    let replica_with = |ca: &std::path::Path| {
        Sqld::start_with(&[
            "--dev",
            "--primary-url",
            &url,
            "--primary-ca-file",
            ca.to_str().unwrap(),
            "--replication-token",
            "s3cret",
            "--max-replica-lag-frames",
            "0",
        ])
    };
    let replica = replica_with(&certs.ca);
    replica.wait_ready();
    let r = replica.connect().await;
    r.batch_execute("insert into t values (2)").await.unwrap();
    let n: i64 = r
        .query_one("select count(*) from t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2, "a write forwarded over TLS, read back on the replica");

    // A primary whose certificate another CA signed is not believed.
    let other = make_certs();
    let fooled = replica_with(&other.ca);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(fooled.http_get("/ready").0, 503);

    // https without a CA to check against does not start.
    let refused = refusal(&["--dev", "--primary-url", &url], LOOPBACK);
    assert!(refused.contains("--primary-ca-file"), "{refused}");
}
