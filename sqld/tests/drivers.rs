//! Client drivers against a started sqld, each with what it sends by
//! itself (connect-time queries, pool resets, type lookups, prepared
//! statements past their thresholds, COPY):
//! - Python: psycopg2, asyncpg (with a pool) and SQLAlchemy 2 (over
//!   psycopg 3 and psycopg2), in `tests/drivers/*.py`, under pytest;
//! - Node: node-postgres (`pg`) and postgres.js, in `tests/node/*.test.*`,
//!   under `node --test`, with the packages `npm ci` installs from
//!   `tests/node/package-lock.json` (scripts/setup.sh does);
//! - Ruby: ruby-pg (Debian's `ruby-pg`) with the basic type maps, in
//!   `tests/ruby/pg_test.rb`, under minitest.
//!
//! A driver that is not installed fails its test: nothing is skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{python, python_can_import, run_bounded, Sqld};

/// Bound on each suite (each takes a few seconds).
const SUITE_TIMEOUT: Duration = Duration::from_secs(120);

fn tests_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
}

/// The server as the URL every driver reads.
fn dsn(sqld: &Sqld) -> String {
    format!("postgresql://sqld@{}/sqld", sqld.pg_addr)
}

fn run_suite(mut cmd: Command, sqld: &Sqld, what: &str) {
    cmd.env("SQLD_TEST_DSN", dsn(sqld));
    let out = run_bounded(cmd, SUITE_TIMEOUT, "see scripts/setup.sh");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{what} failed ({}); output above",
        out.status
    );
}

#[test]
fn python_drivers() {
    for module in ["pytest", "psycopg2", "asyncpg", "sqlalchemy", "psycopg"] {
        assert!(
            python_can_import(module),
            "python3 cannot import {module}; scripts/setup.sh installs it"
        );
    }
    let sqld = Sqld::start();
    let mut cmd = python();
    cmd.args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(tests_dir("drivers"));
    run_suite(cmd, &sqld, "the Python driver tests");
}

#[test]
fn node_drivers() {
    let dir = tests_dir("node");
    for package in ["pg", "postgres"] {
        assert!(
            dir.join("node_modules").join(package).exists(),
            "the node package {package} is missing; run `npm ci` in {} (scripts/setup.sh does)",
            dir.display()
        );
    }
    let sqld = Sqld::start();
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir)
        .args(["--test", "pg.test.js", "postgres.test.mjs"]);
    run_suite(cmd, &sqld, "the Node driver tests");
}

#[test]
fn ruby_pg() {
    let probe = run_bounded(
        {
            let mut cmd = Command::new("ruby");
            cmd.args(["-e", "require 'pg'; require 'minitest'"]);
            cmd
        },
        Duration::from_secs(30),
        "install ruby-pg: apt-get install ruby-pg (scripts/setup.sh does)",
    );
    assert!(
        probe.status.success(),
        "ruby cannot load pg and minitest: apt-get install ruby-pg (scripts/setup.sh does)"
    );
    let sqld = Sqld::start();
    let mut cmd = Command::new("ruby");
    cmd.arg(tests_dir("ruby").join("pg_test.rb"));
    run_suite(cmd, &sqld, "the ruby-pg tests");
}
