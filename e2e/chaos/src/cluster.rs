//! The processes of one round: a real `sqld` primary and its replicas on
//! loopback ports, each in its own directory under the round's temporary
//! directory, with the faults the rounds inject (kill -9, SIGSTOP/SIGCONT,
//! a file-size limit that makes the disk look full).
//!
//! Every node is killed and reaped when dropped, and the temporary
//! directory removed with the cluster, so a failed or interrupted round
//! leaves nothing behind.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long a node may take to listen, or a replica to be ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on one HTTP exchange with a node.
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);

/// One sqld process and what it takes to start it again.
pub struct Node {
    pub name: String,
    pub pg_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub dir: PathBuf,
    /// Where the process's stderr goes (appended across restarts), read
    /// back to find panics and to show on a failed round.
    pub log: PathBuf,
    args: Vec<String>,
    sqld: PathBuf,
    child: Option<Child>,
}

/// A port nobody listens on right now (a small race with other programs
/// is accepted: a clash fails the start with a clear error).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Node {
    /// Starts sqld on `dir` with `extra` arguments after the addresses.
    pub fn start(sqld: &Path, name: &str, dir: PathBuf, extra: &[String]) -> Result<Node> {
        let pg_addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let http_addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let mut args = vec![
            "--dev".to_string(),
            "--db-path".to_string(),
            dir.join("db").display().to_string(),
            "--pg-listen-addr".to_string(),
            pg_addr.to_string(),
            "--http-listen-addr".to_string(),
            http_addr.to_string(),
        ];
        args.extend_from_slice(extra);
        std::fs::create_dir_all(&dir)?;
        let mut node = Node {
            name: name.to_string(),
            pg_addr,
            http_addr,
            log: dir.join("stderr.log"),
            dir,
            args,
            sqld: sqld.to_owned(),
            child: None,
        };
        node.restart()?;
        Ok(node)
    }

    /// Starts the process again with the same directory and addresses.
    pub fn restart(&mut self) -> Result<()> {
        self.kill9();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = Command::new(&self.sqld);
        cmd.args(&self.args)
            .env("SQLD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // A write past RLIMIT_FSIZE then fails with EFBIG instead of the
        // process being killed by SIGXFSZ: the disk-full variant's "disk
        // full". An ignored signal stays ignored across exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.sqld.display()))?;
        self.child = Some(child);
        self.wait_listening()
    }

    fn wait_listening(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!("{} exited during start-up: {status}", self.name);
                }
            }
            if TcpStream::connect(self.pg_addr).is_ok()
                && TcpStream::connect(self.http_addr).is_ok()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("{} did not listen within {START_TIMEOUT:?}", self.name)
    }

    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL and reap: nothing gets flushed.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn signal(&self, sig: i32) -> Result<()> {
        let pid = self.pid().context("node not running")?;
        if unsafe { libc::kill(pid, sig) } != 0 {
            bail!("kill({pid}, {sig}): {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn stop(&self) -> Result<()> {
        self.signal(libc::SIGSTOP)
    }

    pub fn cont(&self) -> Result<()> {
        self.signal(libc::SIGCONT)
    }

    /// Sets the process's RLIMIT_FSIZE (`None`: unlimited). Writes that
    /// would take a file past it fail, as on a full disk.
    pub fn limit_file_size(&self, bytes: Option<u64>) -> Result<()> {
        let pid = self.pid().context("node not running")?;
        let value = bytes.unwrap_or(libc::RLIM_INFINITY);
        let limit = libc::rlimit {
            rlim_cur: value,
            rlim_max: libc::RLIM_INFINITY,
        };
        if unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()) } != 0 {
            bail!("prlimit({pid}): {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// The most data any file under the node's database directory holds:
    /// its length up to its last non-zero byte, since the replication log
    /// is preallocated with zeros well past its last record. A file-size
    /// limit a little above it lets a few more writes through, then fails
    /// them, as a disk filling up would.
    pub fn largest_data(&self) -> u64 {
        fn used(path: &Path) -> u64 {
            let Ok(bytes) = std::fs::read(path) else {
                return 0;
            };
            bytes
                .iter()
                .rposition(|b| *b != 0)
                .map_or(0, |i| i as u64 + 1)
        }
        fn walk(dir: &Path, max: &mut u64) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path(), max),
                    Ok(_) => *max = (*max).max(used(&e.path())),
                    Err(_) => {}
                }
            }
        }
        let mut max = 0;
        walk(&self.dir.join("db"), &mut max);
        max
    }

    /// `GET path` on the node's HTTP listener: the status code.
    pub fn http_status(&self, path: &str) -> Option<u16> {
        let mut s = TcpStream::connect_timeout(&self.http_addr, HTTP_TIMEOUT).ok()?;
        s.set_read_timeout(Some(HTTP_TIMEOUT)).ok()?;
        s.set_write_timeout(Some(HTTP_TIMEOUT)).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).ok()?;
        std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
    }

    /// Waits until `/ready` answers 200 (a replica: bootstrapped and
    /// caught up within its lag bound).
    pub fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.http_status("/ready") == Some(200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        bail!("{} not ready within {START_TIMEOUT:?}", self.name)
    }

    /// A libpq-style connection string for tokio-postgres.
    pub fn conn_str(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=sqld dbname=sqld connect_timeout=2",
            self.pg_addr.port()
        )
    }

    /// The process's stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A stopped process dies of SIGKILL too; CONT first anyway so a
        // reaper never waits on a stopped child.
        let _ = self.cont();
        self.kill9();
    }
}

/// A primary and its replicas, in one temporary directory.
pub struct Cluster {
    pub primary: Node,
    pub replicas: Vec<Node>,
    /// Removed when the cluster is dropped, after the nodes (field order).
    _tmp: tempfile::TempDir,
}

impl Cluster {
    /// Starts the primary, runs `setup` against it (before replicas
    /// exist, so they bootstrap with the schema), then the replicas, and
    /// waits for all of them to be ready.
    pub async fn start(sqld: &Path, replicas: usize, setup: &str) -> Result<Cluster> {
        let tmp = tempfile::Builder::new().prefix("sqld-chaos-").tempdir()?;
        let primary = Node::start(sqld, "primary", tmp.path().join("primary"), &[])?;
        let (client, conn) = tokio_postgres::connect(&primary.conn_str(), tokio_postgres::NoTls)
            .await
            .context("connecting to the primary")?;
        let driver = tokio::spawn(conn);
        client
            .batch_execute(setup)
            .await
            .context("creating the schema")?;
        drop(client);
        let _ = driver.await;
        let url = format!("http://{}", primary.http_addr);
        let mut nodes = Vec::new();
        for i in 0..replicas {
            let name = format!("replica{}", i + 1);
            let extra = [
                "--primary-url".to_string(),
                url.clone(),
                // Ready only when caught up, so the round starts in step.
                "--max-replica-lag-frames".to_string(),
                "0".to_string(),
            ];
            nodes.push(Node::start(sqld, &name, tmp.path().join(&name), &extra)?);
        }
        for n in &nodes {
            n.wait_ready()?;
        }
        Ok(Cluster {
            primary,
            replicas: nodes,
            _tmp: tmp,
        })
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        std::iter::once(&self.primary).chain(self.replicas.iter())
    }

    pub fn nodes_mut(&mut self) -> impl Iterator<Item = &mut Node> {
        std::iter::once(&mut self.primary).chain(self.replicas.iter_mut())
    }
}
