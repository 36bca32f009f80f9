//! psycopg 3 (Python) against a started sqld: the tests live in
//! `tests/psycopg/test_sqld.py`; this starts the server, names it in
//! `SQLD_TEST_DSN` and runs them, under pytest when it is installed and
//! as a plain script otherwise.
//!
//! psycopg must be installed (`pip install "psycopg[binary]"`); without it
//! the test fails rather than skipping.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Sqld;

/// Bound on the whole Python run (the tests take a second or two).
const PYTHON_TIMEOUT: Duration = Duration::from_secs(30);

fn python() -> Command {
    let mut cmd = Command::new("python3");
    // Keep __pycache__ and .pytest_cache out of the source tree.
    cmd.env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PGPASSWORD")
        .env_remove("PGSERVICE")
        .stdin(Stdio::null());
    cmd
}

fn python_can_import(module: &str) -> bool {
    let out = run_bounded(
        {
            let mut cmd = python();
            cmd.args(["-c", &format!("import {module}")]);
            cmd
        },
        Duration::from_secs(10),
    );
    out.status.success()
}

#[test]
fn psycopg_suite() {
    assert!(
        python_can_import("psycopg"),
        "psycopg 3 is not installed for python3; install it with: pip install \"psycopg[binary]\""
    );
    let sqld = Sqld::start();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/psycopg");
    let mut cmd = python();
    if python_can_import("pytest") {
        cmd.args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .arg(&dir);
    } else {
        cmd.arg(dir.join("test_sqld.py"));
    }
    cmd.env("SQLD_TEST_DSN", sqld.conn_str());
    let out = run_bounded(cmd, PYTHON_TIMEOUT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "psycopg tests failed ({}); output above",
        out.status
    );
}

/// Runs `cmd` to completion, capturing its output; kills it and fails the
/// test if it takes longer than `timeout`, or fails clearly if the program
/// is not installed.
fn run_bounded(mut cmd: Command, timeout: Duration) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = match cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`{program}` is not installed; the psycopg tests need python3")
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
