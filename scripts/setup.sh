#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine with a Rust
# toolchain: psql and pgbench (postgresql-client), psycopg 3, psycopg2,
# asyncpg and SQLAlchemy for the Python client tests, Node.js with
# node-postgres and postgres.js (sqld/tests/node, from its lock file),
# ruby-pg,
# kubernetes-validate for the operator's manifests, and for the client
# library's tests a C compiler and the Debian sqlite3 shell. Each step is
# skipped when its tool is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

if ! command -v psql >/dev/null || ! command -v pgbench >/dev/null; then
    echo "setup: installing postgresql-client (psql, pgbench)"
    apt_install postgresql-client
fi

if ! command -v sqlite3 >/dev/null; then
    echo "setup: installing the sqlite3 shell (client library tests)"
    apt_install sqlite3
fi
if ! command -v cc >/dev/null; then
    echo "setup: installing a C compiler (client library tests)"
    apt_install gcc libc6-dev
fi
if ! command -v java >/dev/null; then
    echo "setup: installing a JDK (pgjdbc tests)"
    apt_install default-jdk-headless
fi
if [ ! -e /usr/share/java/postgresql.jar ]; then
    echo "setup: installing pgjdbc (libpostgresql-jdbc-java)"
    apt_install libpostgresql-jdbc-java
fi
if ! python3 -c 'import sqlite3' 2>/dev/null; then
    echo "setup: python3 lacks its sqlite3 module (client library tests)"
    exit 1
fi

pip_install() {
    python3 -m pip install --quiet --disable-pip-version-check "$@"
}

if ! python3 -c 'import psycopg' 2>/dev/null; then
    echo "setup: installing psycopg 3"
    pip_install "psycopg[binary]"
fi
for module in psycopg2:psycopg2-binary asyncpg:asyncpg sqlalchemy:sqlalchemy; do
    if ! python3 -c "import ${module%%:*}" 2>/dev/null; then
        echo "setup: installing ${module#*:} (driver tests)"
        pip_install "${module#*:}"
    fi
done
if ! command -v ruby >/dev/null || ! ruby -e "require 'pg'; require 'minitest'" 2>/dev/null; then
    echo "setup: installing ruby-pg (driver tests)"
    apt_install ruby-pg
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "setup: installing Node.js and npm (driver tests)"
    apt_install nodejs npm
fi
if [ ! -d sqld/tests/node/node_modules/pg ] || [ ! -d sqld/tests/node/node_modules/postgres ]; then
    echo "setup: installing node-postgres and postgres.js (driver tests)"
    npm ci --prefix sqld/tests/node --no-audit --no-fund --silent
fi
if ! python3 -c 'import pytest' 2>/dev/null; then
    echo "setup: installing pytest"
    pip_install pytest
fi
if ! python3 -c 'import moto.server' 2>/dev/null; then
    echo "setup: installing moto (an S3 API on loopback for the backup tests)"
    pip_install "moto[server]"
fi
if ! command -v kubernetes-validate >/dev/null; then
    echo "setup: installing kubernetes-validate"
    pip_install kubernetes-validate
fi
