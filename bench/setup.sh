#!/usr/bin/env bash
# Installs what bench/gateway.py measures with: nginx and wrk from Debian's packages, and
# LiteLLM's proxy in a virtual environment of its own (bench/.litellm-venv).
# Idempotent; run as root (apt-get).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk
  # Debian starts nginx on port 80 at install; the benchmark runs its own.
  (service nginx stop || pkill -x nginx || true) >/dev/null 2>&1
fi
if [ ! -x .litellm-venv/bin/litellm ]; then
  python3 -m venv .litellm-venv
  # 1.109.1 (the issue's) pins releases this machine's index lacks; 1.106.2 is the newest that installs.
  .litellm-venv/bin/pip install --quiet 'litellm[proxy]==1.106.2'
fi
