#!/usr/bin/env bash
# Installs the servers the tests start for themselves, from Debian's packages: PostgreSQL
# (the store), Redis (limits shared by instances), tinyproxy (an egress proxy for the proxy
# tests) and Chromium (the console's browser tests, run headless on loopback). The tests run their own throwaway
# instances on loopback ports; the packaged services Debian may start on install are
# stopped. Idempotent. Without root (and apt), it says what to install and those tests are
# skipped, unless HEADEND_REQUIRE_POSTGRES=1 / HEADEND_REQUIRE_REDIS=1 / HEADEND_REQUIRE_BROWSER=1
# / HEADEND_REQUIRE_PROXY=1.
set -euo pipefail
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)  # the console's browser tests
[ -x /usr/bin/tinyproxy ] || missing+=(tinyproxy)  # the egress proxy tests
if [ ${#missing[@]} = 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "note: not installed: ${missing[*]}; their tests will be skipped (apt-get install ${missing[*]})" >&2
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
# Debian may start a cluster on port 5432 and Redis on 6379 at install; the tests use neither.
(pg_ctlcluster --help >/dev/null 2>&1 && for c in /etc/postgresql/*/main; do
  v=$(basename "$(dirname "$c")"); pg_ctlcluster "$v" main stop || true; done) >/dev/null 2>&1 || true
(command -v service >/dev/null && service redis-server stop) >/dev/null 2>&1 || true
(command -v service >/dev/null && service tinyproxy stop) >/dev/null 2>&1 || true
