//! psycopg 3 (Python) against a started sqld: the tests live in
//! `tests/psycopg/test_sqld.py`; this starts the server, names it in
//! `SQLD_TEST_DSN` and runs them, under pytest when it is installed and
//! as a plain script otherwise.
//!
//! psycopg must be installed (`pip install "psycopg[binary]"`); without it
//! the test fails rather than skipping.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{python, python_can_import, Sqld};

/// Bound on the whole Python run (the tests take a second or two).
const PYTHON_TIMEOUT: Duration = Duration::from_secs(30);

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

fn run_bounded(cmd: Command, timeout: Duration) -> Output {
    common::run_bounded(cmd, timeout, "the psycopg tests need python3")
}
