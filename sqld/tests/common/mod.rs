//! Test harness: starts the real `sqld` binary on free loopback ports with
//! a fresh database directory, and stops it when dropped.

#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Sqld {
    pub child: Child,
    pub pg_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub db_dir: PathBuf,
    /// Keeps the temporary directory alive (and removes it at the end)
    /// unless the test brought its own.
    _tmp: Option<tempfile::TempDir>,
    pub args: Vec<String>,
    /// Environment given to every start.
    pub env: Vec<(String, String)>,
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sqld {
    /// A development server: trust authentication, default limits.
    pub fn start() -> Sqld {
        Sqld::start_with(&["--dev"])
    }

    pub fn start_with(extra: &[&str]) -> Sqld {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db");
        let mut s = Sqld::spawn(&dir, extra);
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server on an existing database directory.
    pub fn spawn(db_dir: &Path, extra: &[&str]) -> Sqld {
        Sqld::spawn_env(db_dir, extra, &[])
    }

    /// The same, with extra environment variables.
    pub fn spawn_env(db_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Sqld {
        let pg_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let http_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut args = vec![
            "--db-path".to_string(),
            db_dir.display().to_string(),
            "--pg-listen-addr".to_string(),
            pg_addr.to_string(),
            "--http-listen-addr".to_string(),
            http_addr.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut s = Sqld {
            child: launch(&args, &env),
            pg_addr,
            http_addr,
            db_dir: db_dir.to_owned(),
            _tmp: None,
            args,
            env,
        };
        s.wait_listening();
        s
    }

    /// A development replica of `primary`, ready only once caught up (so
    /// tests can read right away).
    pub fn replica_of(primary: &Sqld, extra: &[&str]) -> Sqld {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = Sqld::replica_on(&tmp.path().join("db"), primary, extra);
        s._tmp = Some(tmp);
        s
    }

    /// The same, on an existing database directory.
    pub fn replica_on(dir: &Path, primary: &Sqld, extra: &[&str]) -> Sqld {
        let url = format!("http://{}", primary.http_addr);
        let mut args = vec![
            "--dev",
            "--primary-url",
            url.as_str(),
            "--max-replica-lag-frames",
            "0",
        ];
        args.extend_from_slice(extra);
        Sqld::spawn(dir, &args)
    }

    /// Waits for `/ready` to answer 200.
    pub fn wait_ready(&self) {
        eventually("ready", Duration::from_secs(15), || {
            self.http_get("/ready").0 == 200
        });
    }

    /// Starts the server again with the same arguments (database and
    /// addresses) after it stopped or was killed.
    pub fn restart(&mut self) {
        self.child = launch(&self.args, &self.env);
        self.wait_listening();
    }

    /// Waits for both listeners, or says why the server is not there: it
    /// exited (and how), or it never listened (a loaded machine starts a
    /// debug binary slowly, hence the generous bound).
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if TcpStream::connect(self.pg_addr).is_ok()
                && TcpStream::connect(self.http_addr).is_ok()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "sqld ({}) exited before listening on {} and {}: {status}",
                    self.args.join(" "),
                    self.pg_addr,
                    self.http_addr
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "sqld ({}) did not start listening on {} and {}",
            self.args.join(" "),
            self.pg_addr,
            self.http_addr
        );
    }

    pub fn port(&self) -> u16 {
        self.pg_addr.port()
    }

    /// A libpq-style connection string for this server.
    pub fn conn_str(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=sqld dbname=sqld",
            self.pg_addr.port()
        )
    }

    pub async fn connect(&self) -> tokio_postgres::Client {
        self.connect_with(&self.conn_str()).await
    }

    pub async fn connect_with(&self, conn_str: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(conn_str, tokio_postgres::NoTls)
            .await
            .expect("connecting to sqld");
        tokio::spawn(connection);
        client
    }

    /// GET a path on the HTTP listener; returns (status, body).
    pub fn http_get(&self, path: &str) -> (u16, String) {
        self.http_request("GET", path)
    }

    /// POST (no body) to a path on the HTTP listener: (status, body).
    pub fn http_post(&self, path: &str) -> (u16, String) {
        self.http_request("POST", path)
    }

    /// (0, "") when nothing answers (a server restarting in another role).
    fn http_request(&self, method: &str, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let Ok(mut s) = TcpStream::connect(self.http_addr) else {
            return (0, String::new());
        };
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let mut out = String::new();
        if s.write_all(request.as_bytes()).is_err() || s.read_to_string(&mut out).is_err() {
            return (0, String::new());
        }
        let Some(status) = out.get(9..12).and_then(|s| s.parse().ok()) else {
            return (0, String::new());
        };
        let body = out
            .split_once("\r\n\r\n")
            .map(|x| x.1.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// The internal API's URL, as replicas and `sqld promote` name it.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// SIGSTOP: the process freezes, its sockets stay open.
    pub fn pause(&self) {
        unsafe_kill(self.child.id() as i32, 19);
    }

    /// SIGCONT after `pause`.
    pub fn resume(&self) {
        unsafe_kill(self.child.id() as i32, 18);
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id() as i32;
        unsafe_kill(pid, 15);
        self.child.wait().unwrap()
    }
}

fn launch(args: &[String], env: &[(String, String)]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_sqld"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("SQLD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting sqld")
}

fn unsafe_kill(pid: i32, sig: i32) {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
}

impl Drop for Sqld {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `sqld <args>` (a client subcommand such as `promote`) to its end,
/// within a minute; returns its standard output, failing the test on an
/// error exit.
pub fn sqld_command(args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sqld"));
    cmd.args(args).env("SQLD_LOG", "warn");
    let out = run_bounded(cmd, Duration::from_secs(60), "it is built by cargo");
    assert!(
        out.status.success(),
        "sqld {}: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A protocol 3.0 startup packet for `user` and database `sqld`.
pub fn startup_packet(user: &str) -> Vec<u8> {
    let mut body = 196608i32.to_be_bytes().to_vec();
    body.extend_from_slice(format!("user\0{user}\0database\0sqld\0\0").as_bytes());
    let mut p = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    p.extend(body);
    p
}

/// A typed frontend message: `kind`, its length, `body`.
pub fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// A sample's value on `/metrics`, if it is there.
pub fn metric_sample(s: &Sqld, name: &str) -> Option<f64> {
    let (_, body) = s.http_get("/metrics");
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A sample's value on `/metrics` (0 when absent).
pub fn metric(s: &Sqld, name: &str) -> f64 {
    metric_sample(s, name).unwrap_or(0.0)
}

/// Polls `done` until it holds, failing the test after `within`.
pub fn eventually(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The first column of every row of `sql`, as integers.
pub async fn integers(c: &tokio_postgres::Client, sql: &str) -> Vec<i64> {
    c.query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The one integer `sql` returns.
/// The one integer `sql` returns, whether it is described as int8
/// (`count(*)`, a column) or int4 (`select 1`, as Postgres types it).
pub async fn scalar(c: &tokio_postgres::Client, sql: &str) -> i64 {
    let row = c.query_one(sql, &[]).await.unwrap();
    row.try_get::<_, i64>(0)
        .or_else(|_| row.try_get::<_, i32>(0).map(i64::from))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// `python3`, with its caches kept out of the source tree and no
/// libpq settings of the environment.
pub fn python() -> Command {
    let mut cmd = Command::new("python3");
    cmd.env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PGPASSWORD")
        .env_remove("PGSERVICE")
        .stdin(Stdio::null());
    cmd
}

/// Whether `python3` can import `module`.
pub fn python_can_import(module: &str) -> bool {
    let mut cmd = python();
    cmd.args(["-c", &format!("import {module}")]);
    run_bounded(
        cmd,
        Duration::from_secs(10),
        "the Python tests need python3",
    )
    .status
    .success()
}

/// Runs `cmd` to completion, capturing its output; kills it and fails the
/// test if it takes longer than `timeout`, or fails clearly if the program
/// is not installed (`install_hint` says how to get it).
pub fn run_bounded(mut cmd: Command, timeout: Duration, install_hint: &str) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = match cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`{program}` is not installed; {install_hint}")
        }
        Err(e) => panic!("cannot run `{program}`: {e}"),
    };
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{program}` did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// Reads backend messages (type, body) from a raw connection until one of
/// type `until` (ReadyForQuery: `b'Z'`), failing on a close or the read
/// timeout.
pub fn read_messages(s: &mut std::net::TcpStream, until: u8) -> Vec<(u8, Vec<u8>)> {
    use std::io::Read;
    let mut messages = Vec::new();
    loop {
        let mut header = [0u8; 5];
        s.read_exact(&mut header)
            .expect("a message before the connection closed or the read timeout");
        let len = i32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
        let mut body = vec![0u8; len - 4];
        s.read_exact(&mut body).expect("the rest of the message");
        messages.push((header[0], body));
        if header[0] == until {
            return messages;
        }
    }
}

/// A self-signed certificate for localhost and its key, made with openssl
/// in `dir`: (certificate, key).
pub fn self_signed_cert(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is needed to make a test certificate");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    (cert, key)
}
