#!/usr/bin/env bash
# A real PostgreSQL server for the audit log's tests: Debian's `postgresql` package, installed
# when missing (as root). The tests start their own server on a free loopback port, as the
# package's `postgres` user when run as root (tests/postgres.py).
set -euo pipefail
if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "PostgreSQL is missing: install Debian's postgresql package (sudo apt-get install postgresql)" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
