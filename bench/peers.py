"""The gateways bench/gateway.py measures, each as it is started and called.

A ``Target`` is how to start one (its command, environment and port: a number, or a file its
launcher writes its base URL to) and how to call it per mode (``json`` or ``stream``): the
path, the ``model`` and the headers. ``targets()`` builds them all for one run's upstreams
and work directory; the ones a machine lacks (bench/setup.sh installs them) are left out.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LITELLM = BENCH / ".litellm-venv" / "bin" / "litellm"
TENSORZERO_PYTHON = BENCH / ".tensorzero-venv" / "bin" / "python"
PORTKEY = BENCH / "portkey" / "node_modules" / "@portkey-ai" / "gateway" / "build"
MODES = ("json", "stream")


@dataclass
class Target:
    name: str
    argv: list[str] | None  # None: the upstream itself (direct)
    env: dict[str, str] = field(default_factory=dict)
    port: int | None = None
    base_file: Path | None = None  # where a launcher writes its base URL (a port of its own)
    path: str = "/v1/chat/completions"
    models: dict[str, str] = field(default_factory=dict)  # mode -> model
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # mode -> headers
    key: str | None = None  # its bearer token
    note: str = ""  # how it is configured, for the report


@dataclass
class Upstreams:
    json_port: int
    sse_port: int

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.json_port if mode == 'json' else self.sse_port}/v1"


def headend_config(up: Upstreams, operator: bool) -> str:
    """Two model routes, one per nginx answer, each falling back to the other; the operator's
    set-up prices the provider too (every request is costed against the key's budget)."""
    price = ", price: {input: 0.15, output: 0.6}" if operator else ""
    return f"""
providers:
  json: {{type: openai, base_url: "{up.url("json")}", api_key: sk-up{price}}}
  sse: {{type: openai, base_url: "{up.url("stream")}", api_key: sk-up{price}}}
models:
  bench-json: [json/bench-model, sse/bench-model]
  bench-sse: [sse/bench-model, json/bench-model]
"""


def headend_key(config: Path, env: dict[str, str], *limits: str) -> str:
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "headend",
            "keys",
            "create",
            "--config",
            str(config),
            "--name",
            "bench",
            "--scope",
            "chat",
            *limits,
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return created.stdout.split("\n")[1].strip()


def headend_targets(
    work: Path, up: Upstreams, port: int, workers: list[int], redis: str | None, env: dict[str, str]
) -> list[Target]:
    models = {"json": "bench-json", "stream": "bench-sse"}
    (work / "agents").mkdir(exist_ok=True)
    out = []
    for operator in (False, True):
        directory = work / ("operator" if operator else "shipped")
        directory.mkdir(exist_ok=True)
        config = directory / "headend.yaml"
        config.write_text(headend_config(up, operator) + (f"redis: {redis}\n" if redis else ""))
        # Limits and a budget set high enough never to refuse: what checking them costs.
        limits = (
            [
                "--rpm",
                "100000000",
                "--tpm",
                "1000000000000",
                "--max-concurrency",
                "100000",
                "--budget",
                "1000000000",
            ]
            if operator
            else []
        )
        key = headend_key(config, env, *limits)
        serve = [sys.executable, "-m", "headend", "serve", "--config", str(config)]
        serve += ["--agents", str(work / "agents"), "--port", str(port)]
        if operator:
            out.append(
                Target(
                    "headend-ops",
                    [*serve, "--log-format", "json"],
                    env,
                    port,
                    models=models,
                    key=key,
                    note="a key with rpm, tpm, max_concurrency and a budget; prices; JSON logs",
                )
            )
            continue
        for count in workers:
            name = "headend" if count == 1 else f"headend x{count}"
            out.append(
                Target(
                    name,
                    [*serve, "--workers", str(count)],
                    env,
                    port,
                    models=models,
                    key=key,
                    note="as shipped: a key, the access log on (text), log level info",
                )
            )
        out.append(
            Target(
                "headend-quiet",
                [*serve, "--no-access-log", "--log-level", "warning"],
                env,
                port,
                models=models,
                key=key,
                note="--no-access-log --log-level warning (how earlier runs measured it)",
            )
        )
    return out


def bare_target(up: Upstreams, port: int, env: dict[str, str]) -> Target:
    return Target(
        "bare",
        [
            sys.executable,
            str(BENCH / "bare_proxy.py"),
            str(port),
            f"bench-json={up.url('json')}/chat/completions",
            f"bench-sse={up.url('stream')}/chat/completions",
        ],
        env,
        port,
        models={"json": "bench-json", "stream": "bench-sse"},
        note="20-line Starlette + aiohttp on uvicorn: no auth, limits, accounting or logs",
    )


def tensorzero_target(work: Path, up: Upstreams, env: dict[str, str]) -> Target | None:
    if not TENSORZERO_PYTHON.exists():
        return None
    lines = [
        "[gateway]",
        "observability.enabled = false",
        "disable_pseudonymous_usage_analytics = true",
    ]
    for mode, model in (("json", "bench-json"), ("stream", "bench-sse")):
        lines += [
            f"[models.{model}]",
            'routing = ["nginx"]',
            f"[models.{model}.providers.nginx]",
            'type = "openai"',
            'model_name = "bench-model"',
            f'api_base = "{up.url(mode)}/"',
            'api_key_location = "none"',
        ]
    config = work / "tensorzero.toml"
    config.write_text("\n".join(lines) + "\n")
    base_file = work / "tensorzero.url"
    return Target(
        "tensorzero",
        [str(TENSORZERO_PYTHON), str(BENCH / "tensorzero_gateway.py"), str(config), str(base_file)],
        {
            **env,
            "TOKIO_WORKER_THREADS": "1",  # one thread, as headend has one event loop
            "TENSORZERO_DISABLE_PSEUDONYMOUS_USAGE_ANALYTICS": "1",
            "RUST_LOG": "warn",
        },
        base_file=base_file,
        path="/openai/v1/chat/completions",
        models={m: f"tensorzero::model_name::{n}" for m, n in models_of().items()},
        note="2026.6 from its PyPI wheel, 1 Tokio worker thread, observability and analytics off",
    )


def models_of() -> dict[str, str]:
    return {"json": "bench-json", "stream": "bench-sse"}


def portkey_target(up: Upstreams, port: int, env: dict[str, str]) -> Target | None:
    start = PORTKEY / "start-server.js"
    if not start.exists():
        return None
    return Target(
        "portkey",
        [
            "node",
            "--import",
            str(BENCH / "portkey" / "loopback.mjs"),
            str(start),
            f"--port={port}",
            "--headless",
        ],
        {**env, "NODE_ENV": "production"},
        port,
        models={"json": "bench-model", "stream": "bench-model"},
        headers={
            mode: {"x-portkey-provider": "openai", "x-portkey-custom-host": up.url(mode)}
            for mode in MODES
        },
        key="sk-up",
        note="@portkey-ai/gateway 1.15.2 on Node "
        + os.popen("node --version").read().strip()
        + ", @hono/node-server 1.13.5 as its lockfile pins",
    )


def litellm_target(
    work: Path, up: Upstreams, port: int, env: dict[str, str], key: str
) -> Target | None:
    if not LITELLM.exists():
        return None
    config = work / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        + "".join(
            f"  - model_name: {model}\n    litellm_params:\n      model: openai/bench-model\n"
            f'      api_base: "{up.url(mode)}"\n      api_key: sk-up\n'
            for mode, model in models_of().items()
        )
    )
    return Target(
        "litellm",
        [
            str(LITELLM),
            "--config",
            str(config),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--num_workers",
            "1",
        ],
        {**env, "LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": key},
        port,
        models=models_of(),
        key=key,
        note="LiteLLM proxy 1.106.2, one worker",
    )
