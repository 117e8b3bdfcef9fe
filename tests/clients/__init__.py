"""Real clients from the npm registry (see package.json here), installed by
``scripts/clients.sh``: where they are, and an environment that keeps them on loopback."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

CLIENTS = Path(__file__).resolve().parent
BIN = CLIENTS / "node_modules" / ".bin"
MCP_TINY = CLIENTS / "mcp_tiny.py"
REQUIRED_ENV = "HEADEND_REQUIRE_CLIENTS"

# Nothing a client sends may leave the machine: telemetry, error reports, update checks off.
QUIET = {
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "NO_UPDATE_NOTIFIER": "1",
    "DO_NOT_TRACK": "1",
}


def mcp_calls(log: Path) -> list[dict[str, object]]:
    """The tool calls ``mcp_tiny.py`` received (its ``$MCP_CALLS`` log), in order."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def require_clients() -> None:
    """Skip when the clients are not installed, unless the run requires them (CI)."""
    if shutil.which("node") and (CLIENTS / "node_modules").is_dir():
        return
    message = "client tests need node and scripts/clients.sh"
    if os.environ.get(REQUIRED_ENV) == "1":
        pytest.fail(message)
    pytest.skip(message)


def node_env(**extra: str) -> dict[str, str]:
    """The test's environment for a client: no proxies, no provider keys, telemetry off."""
    keep = ("PATH", "LANG", "LC_ALL", "TERM", "TMPDIR", "USER")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    return {**env, **QUIET, **extra}
