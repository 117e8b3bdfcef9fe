"""A headend site in front of the fake upstream: agents, a model route, an admin key."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.conftest import RunningServer, start_server, stop_server
from tests.upstream import FakeUpstream

ADMIN = "admin-bootstrap-secret-0123456789abcdef"
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]
UPSTREAM_CONFIG = """
providers:
  up: {{type: openai, base_url: "{url}/v1", retry: {{attempts: 1}}}}
models:
  gpt: up/gpt
"""


def make_site(
    root: Path, upstream: FakeUpstream, prefix: str, agents: dict[str, str], extra: str = ""
) -> Path:
    """``agents`` maps names to their files' text; ``gpt`` routes to the upstream's /prefix."""
    (root / "agents").mkdir()
    for name, text in agents.items():
        (root / "agents" / f"{name}.md").write_text(text)
    (root / "headend.yaml").write_text(UPSTREAM_CONFIG.format(url=upstream.url(prefix)) + extra)
    return root


def serve(
    site: Path,
    log: str = "server.log",
    *extra: str,
    access_log: bool = False,
    env: dict[str, str] | None = None,
) -> RunningServer:
    return start_server(
        site / "agents",
        site / log,
        "--config",
        str(site / "headend.yaml"),
        *extra,
        env={"HEADEND_ADMIN_KEY": ADMIN, **(env or {})},
        access_log=access_log,
    )


def site_fixture(
    prefix: str,
    agents: dict[str, str] | None = None,
    extra: str = "",
    before: Callable[[], None] | None = None,
    access_log: bool = False,
) -> Any:
    """A module-scoped fixture: a headend site in front of the fake upstream's ``prefix``
    (``before`` runs first, e.g. to skip when a client is missing)."""

    @pytest.fixture(scope="module")
    def served(
        upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[RunningServer]:
        if before is not None:
            before()
        root = make_site(tmp_path_factory.mktemp(prefix), upstream, prefix, agents or {}, extra)
        server = serve(root, access_log=access_log)
        yield server
        stop_server(server)

    return served


def command(site: Path, *args: str) -> str:
    """What ``headend <args> --config <the site's>`` prints; it must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", "headend", *args, "--config", str(site / "headend.yaml")],
        capture_output=True,
        text=True,
        cwd=site,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def issue(server: RunningServer, **body: object) -> dict[str, object]:
    """A new key through the admin API: its description and its secret."""
    response = httpx.post(
        server.base_url + "/admin/keys", json=body, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert response.status_code == 200, response.text
    created: dict[str, object] = response.json()
    return created
