#!/usr/bin/env bash
# Installs the servers the tests start for themselves: PostgreSQL from Debian's packages.
# The tests run their own throwaway cluster on a loopback port; the packaged service that
# Debian starts on install is stopped. Idempotent. Without root (and apt), it says what to
# install and the PostgreSQL tests are skipped, unless HEADEND_REQUIRE_POSTGRES=1.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "note: PostgreSQL is not installed; its tests will be skipped (apt-get install postgresql)" >&2
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
# Debian starts a cluster on port 5432 at install; the tests do not use it.
(pg_ctlcluster --help >/dev/null 2>&1 && for c in /etc/postgresql/*/main; do
  v=$(basename "$(dirname "$c")"); pg_ctlcluster "$v" main stop || true; done) >/dev/null 2>&1 || true
