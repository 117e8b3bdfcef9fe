#!/usr/bin/env bash
# Installs the real clients the test suite drives — Codex CLI, Claude Code and the Vercel AI
# SDK, pinned in tests/clients/package-lock.json — from the npm registry into
# tests/clients/node_modules (again only when the lockfile changed). Needs node and npm
# (Node 20 or newer; Debian's nodejs otherwise). The clients run on loopback only, with
# telemetry and updates off (tests/clients/__init__.py). Without node, it says so and the
# client tests are skipped, unless HEADEND_REQUIRE_CLIENTS=1.
set -euo pipefail
cd "$(dirname "$0")/../tests/clients"
if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "note: node and npm are not installed; the client tests will be skipped" >&2
    exit 0
  fi
fi
stamp=node_modules/.installed-lock
if [ -f "$stamp" ] && cmp -s package-lock.json "$stamp"; then
  exit 0
fi
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
# The registry sometimes stalls mid-download (EIDLETIMEOUT): retry, within npm and around it.
for attempt in 1 2 3; do
  if npm ci --no-audit --no-fund --loglevel=error --fetch-retries=5 \
      --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=30000; then
    cp package-lock.json "$stamp"
    exit 0
  fi
  echo "npm ci failed (attempt $attempt of 3); trying again" >&2
  sleep $((attempt * 5))
done
exit 1
