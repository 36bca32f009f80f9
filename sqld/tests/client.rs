//! The client library (`sqld/client`, a drop-in `libsqlite3.so`) against a
//! real sqld: a C program, Python's `sqlite3` module and the Debian
//! `sqlite3` shell, each loading the library through `LD_LIBRARY_PATH`;
//! and a replica that serves reads and forwards writes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::{run_bounded, Sqld};

const TIMEOUT: Duration = Duration::from_secs(120);
const TESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/client");
const HEADER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/client/include");

/// A directory holding the freshly built library under both names
/// programs look for: `libsqlite3.so` and the soname `libsqlite3.so.0`.
fn library_dir() -> tempfile::TempDir {
    let built = newest_library();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&built, dir.path().join("libsqlite3.so")).unwrap();
    std::os::unix::fs::symlink("libsqlite3.so", dir.path().join("libsqlite3.so.0")).unwrap();
    dir
}

/// The newest `libsqlite3*.so` cargo built next to the sqld binary (the
/// dev-dependency on `sqld-client` makes `cargo test` build it).
fn newest_library() -> PathBuf {
    let profile = Path::new(env!("CARGO_BIN_EXE_sqld")).parent().unwrap();
    let mut candidates = Vec::new();
    for dir in [profile.to_path_buf(), profile.join("deps")] {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("libsqlite3") && name.ends_with(".so") {
                let modified = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                candidates.push((modified, entry.path()));
            }
        }
    }
    candidates.sort();
    candidates
        .pop()
        .map(|(_, p)| p)
        .expect("libsqlite3.so was not built: run `cargo build -p sqld-client`")
}

fn url(s: &Sqld) -> String {
    format!("postgres://sqld@{}/sqld", s.pg_addr)
}

fn assert_ok(out: &std::process::Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

#[test]
fn c_program_exercises_the_api() {
    let server = Sqld::start();
    let lib = library_dir();
    let exe = lib.path().join("api_test");
    let mut cc = Command::new("cc");
    cc.args(["-Wall", "-Wextra", "-Werror", "-O1", "-o"])
        .arg(&exe)
        .arg(format!("{TESTS}/api_test.c"))
        .arg(format!("-I{HEADER_DIR}"))
        .arg(format!("-L{}", lib.path().display()))
        .args(["-lsqlite3", "-lpthread"]);
    assert_ok(
        &run_bounded(cc, TIMEOUT, "install a C compiler (build-essential)"),
        "cc",
    );
    // The program links against the soname, resolved through the path.
    let mut run = Command::new(&exe);
    run.arg(url(&server))
        .env("LD_LIBRARY_PATH", lib.path())
        .env_remove("SQLD_URL");
    let stdout = assert_ok(&run_bounded(run, TIMEOUT, ""), "api_test");
    assert!(stdout.contains("round trips for 100 steps: 1"), "{stdout}");
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
}

#[test]
fn python_sqlite3_module_uses_the_server() {
    let server = Sqld::start();
    let lib = library_dir();
    let mut py = Command::new("python3");
    py.arg(format!("{TESTS}/python_test.py"))
        .env("LD_LIBRARY_PATH", lib.path())
        .env("SQLD_URL", url(&server));
    let stdout = assert_ok(
        &run_bounded(py, TIMEOUT, "install python3"),
        "python_test.py",
    );
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
    // The rows really are on the server.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = server.connect().await;
        let n: i64 = c
            .query_one("SELECT count(*) FROM items", &[])
            .await
            .unwrap()
            .get(0);
        assert!(n > 50, "{n}");
    });
}

#[test]
fn sqlite3_shell_runs_a_script() {
    let server = Sqld::start();
    let lib = library_dir();
    let script = std::fs::read(format!("{TESTS}/shell.sql")).unwrap();
    let script_path = lib.path().join("shell.sql");
    std::fs::write(&script_path, script).unwrap();
    let mut shell = Command::new("sqlite3");
    shell
        .args(["-bail", "app.db"])
        .arg(format!(".read {}", script_path.display()))
        .env("LD_LIBRARY_PATH", lib.path())
        .env("SQLD_URL", url(&server));
    let out = run_bounded(
        shell,
        TIMEOUT,
        "install the Debian package sqlite3 (scripts/setup.sh)",
    );
    let stdout = assert_ok(&out, "sqlite3 shell");
    assert_eq!(
        stdout,
        "1|first; with a semicolon|1.5|real\n2|it's quoted|2.0|real\nn,last\r\n2,2\r\n"
    );
    // Without SQLD_URL a plain filename cannot open: there is no local engine.
    let mut local = Command::new("sqlite3");
    local
        .args(["app.db", "SELECT 1"])
        .env("LD_LIBRARY_PATH", lib.path())
        .env_remove("SQLD_URL");
    let out = run_bounded(local, TIMEOUT, "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no local database engine"));
}

#[test]
fn replica_serves_reads_and_forwards_writes() {
    let primary = Sqld::start();
    let replica = Sqld::start_with(&[
        "--dev",
        "--primary-url",
        &format!("http://{}", primary.http_addr),
        "--max-replica-lag-frames",
        "0",
    ]);
    let lib = library_dir();
    let script = r#"
import sqlite3
con = sqlite3.connect("app.db")
con.execute("CREATE TABLE r (id INTEGER PRIMARY KEY, v TEXT)")
cur = con.execute("INSERT INTO r (v) VALUES (?)", ("through the replica",))
assert cur.lastrowid == 1, cur.lastrowid
con.commit()
# read-your-writes on the replica
assert con.execute("SELECT v, typeof(id) FROM r").fetchall() == [("through the replica", "integer")]
con.execute("INSERT INTO r (v) VALUES ('second')")
con.rollback()
assert con.execute("SELECT count(*) FROM r").fetchone()[0] == 1
try:
    con.execute("INSERT INTO r (id, v) VALUES (1, 'dup')")
    raise AssertionError("duplicate accepted")
except sqlite3.IntegrityError:
    pass
con.rollback()
print("ok")
"#;
    let mut py = Command::new("python3");
    py.args(["-c", script])
        .env("LD_LIBRARY_PATH", lib.path())
        .env("SQLD_URL", url(&replica));
    let stdout = assert_ok(
        &run_bounded(py, TIMEOUT, "install python3"),
        "replica script",
    );
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = primary.connect().await;
        let v: String = c.query_one("SELECT v FROM r", &[]).await.unwrap().get(0);
        assert_eq!(v, "through the replica");
    });
}
