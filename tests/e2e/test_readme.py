"""The README as a contract: its examples, read from README.md itself, run as written.

- Every ``yaml`` block is a headend.yaml snippet: ``headend check`` passes it, read in the
  context the README gives it (the providers of "Upstream providers and model routes", which
  the other snippets name).
- Every ``markdown`` block is an agent file: ``headend check`` passes it.
- Every ``python`` block runs against a real server on the embedded model, the first screen's
  ``client`` and the names a reader supplies (``IDENTITY_SECRET``, ``user_id``) given.
- Every ``sh`` block's ``curl`` and ``headend`` lines run, in order, against a real server
  (``curl`` with ``--fail-with-body``) or a store: ``[--optional …]`` parts are left out and
  ``KEY_ID`` is the id of the key the block made. Lines of output shown after a command are
  not commands and are passed over.

A block the suite cannot run here says so in the README, in a comment right above it:
``<!-- readme: not run: why -->`` (Docker, the suite itself, upstreams on the internet).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, RunningServer, start_server, stop_server

pytestmark = pytest.mark.e2e

README = ROOT / "README.md"
ADMIN = "readme-admin-key-0123456789abcdef"
ENV = {  # the secrets the snippets name, as an operator's environment would hold them
    "OPENAI_API_KEY": "sk-test-openai",
    "ANTHROPIC_API_KEY": "sk-ant-test",
    "SEARCH_TOKEN": "search-token",
}
NOT_RUN = re.compile(r"<!--\s*readme:\s*not run:\s*(.+?)\s*-->\s*$")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.S | re.M)
BASE_URLS = ("http://127.0.0.1:8080", "http://localhost:8080", "localhost:8080", "127.0.0.1:8080")
COMMANDS = ("curl ", "headend ", "H=")


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int
    not_run: str | None  # why, when the README says it is not run

    @property
    def name(self) -> str:
        return f"README.md:{self.line} ({self.lang})"


def blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = NOT_RUN.search(before)
        line = text[: match.start()].count("\n") + 1
        found.append(Block(match.group(1), match.group(2), line, marker and marker.group(1)))
    return found


def of(lang: str) -> list[Block]:
    return [block for block in blocks() if block.lang == lang]


def ids(found: list[Block]) -> list[str]:
    return [block.name for block in found]


def merged(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        return {k: merged(base.get(k), v) if k in base else v for k, v in over.items()} | {
            k: v for k, v in base.items() if k not in over
        }
    return over


def routes_snippet() -> dict[str, Any]:
    """The providers and routes the other snippets name (ollama, openai, claude, local)."""
    for block in of("yaml"):
        loaded = yaml.safe_load(block.text)
        if "ollama" in loaded.get("providers", {}) and "models" in loaded:
            return dict(loaded)
    raise AssertionError("the README lost its providers and routes snippet")


def check(site: Path, config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    (site / "headend.yaml").write_text(yaml.safe_dump(config))
    # A model file a snippet names is there, as the operator's would be.
    for section in config.get("providers", {}).values():
        path = section.get("model_path") if isinstance(section, dict) else None
        if isinstance(path, str) and path and not path.startswith("$"):
            target = site / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.symlink_to(bundled_model())
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADEND_")} | ENV
    return subprocess.run(
        [sys.executable, "-m", "headend", "check", "--config", str(site / "headend.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=site,
        env=env,
    )


def bundled_model() -> Path:
    from headend.providers.llama_cpp import bundled_model_path

    return bundled_model_path()


@pytest.mark.parametrize("block", of("yaml"), ids=ids(of("yaml")))
def test_every_config_snippet_passes_headend_check(block: Block, tmp_path: Path) -> None:
    assert block.not_run is None, f"{block.name}: a config snippet is always checked"
    snippet = yaml.safe_load(block.text)  # as pasted: YAML that parses
    assert isinstance(snippet, dict), block.name
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "stub.md").write_text("---\nmodel: local\n---\nHi.\n")
    config = merged(routes_snippet(), snippet)
    config.pop("agents_dir", None)
    done = check(tmp_path, config)
    assert done.returncode == 0, f"{block.name}:\n{done.stderr}"
    assert done.stdout.startswith("ok: "), done.stdout


@pytest.mark.parametrize("block", of("markdown"), ids=ids(of("markdown")))
def test_every_agent_file_passes_headend_check(block: Block, tmp_path: Path) -> None:
    assert block.not_run is None, f"{block.name}: an agent file is always checked"
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "example.md").write_text(block.text)
    # The agents and MCP servers an example names as tools are the reader's own.
    for name in re.findall(r"agent:(\w[\w-]*)", block.text):
        (agents / f"{name}.md").write_text("---\nmodel: local\n---\nYou summarize.\n")
    config = routes_snippet()
    for mcp in re.findall(r"mcp:(\w[\w-]*)", block.text):
        config.setdefault("mcp_servers", {})[mcp] = {"command": "true"}
    done = check(tmp_path, config)
    assert done.returncode == 0, f"{block.name}:\n{done.stderr}"
    assert "agent(s) from" in done.stdout


def runnable(found: list[Block]) -> list[Block]:
    return [block for block in found if block.not_run is None]


def with_server(text: str, base: str) -> str:
    for written in BASE_URLS:
        text = text.replace(written, base.removeprefix("http://") if "://" not in written else base)
    return text


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """headend on the embedded model with an admin key, for the blocks that use one."""
    agents = tmp_path_factory.mktemp("readme") / "agents"
    agents.mkdir()
    (agents / "assistant.md").write_text(
        (ROOT / "src/headend/data/agents/assistant.md").read_text()
    )
    running = start_server(agents, agents.parent / "server.log", env={"HEADEND_ADMIN_KEY": ADMIN})
    yield running
    stop_server(running)


PRELUDE = """
from openai import OpenAI
client = OpenAI(base_url="{api}", api_key="unused")
IDENTITY_SECRET = "the key's identity secret"
user_id = "user-42"
"""


@pytest.mark.parametrize("block", runnable(of("python")), ids=ids(runnable(of("python"))))
def test_every_python_example_runs(block: Block, server: RunningServer) -> None:
    code = PRELUDE.format(api=server.api) + with_server(block.text, server.base_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADEND_", "OPENAI_"))}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env
    )
    assert done.returncode == 0, f"{block.name}:\n{done.stderr[-2000:]}"


def commands(text: str) -> list[str]:
    """The block's command lines, continuations joined; output lines left out."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip().startswith(COMMANDS)]


def as_run(line: str, key_id: str | None) -> str:
    line = re.sub(r"\s\[--[^\]]*\]", "", line)  # [--optional …]; bash drops the comments
    if key_id is not None:
        line = line.replace("KEY_ID", key_id)
    if line.startswith("curl "):
        line = "curl -sS --fail-with-body " + line[len("curl ") :]
    if line.startswith("headend "):
        line = f"{shlex.quote(sys.executable)} -m {line}"
    return line


@pytest.mark.parametrize("block", runnable(of("sh")), ids=ids(runnable(of("sh"))))
def test_every_shell_example_runs(
    block: Block, server: RunningServer, admin_server: RunningServer, tmp_path: Path
) -> None:
    lines = commands(block.text)
    assert lines, f"{block.name}: no command to run; mark it '<!-- readme: not run: … -->'"
    keyed = "HEADEND_ADMIN_KEY" in block.text
    target = admin_server if keyed else server
    # headend's own commands run on a store of their own, with an agent the examples name.
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "support.md").write_text("---\nmodel: local\n---\nYou help.\n")
    (tmp_path / "agents" / "assistant.md").write_text("---\nmodel: local\n---\nYou help.\n")
    (tmp_path / "headend.yaml").write_text("store: sqlite:///h.db\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADEND_")}
    env |= {"HEADEND_ADMIN_KEY": ADMIN, "HEADEND_CONFIG": str(tmp_path / "headend.yaml")}
    key_id = None
    script: list[str] = []
    for line in commands(block.text):
        script.append(as_run(with_server(line, target.base_url), key_id))
        done = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + "\n".join(script)],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=tmp_path,
            env=env,
        )
        assert done.returncode == 0, f"{block.name}: {line}\n{done.stdout[-800:]}{done.stderr}"
        if line.startswith("H="):
            continue
        script = [s for s in script if s.startswith("H=")]  # ran: keep only the variables
        made = re.match(r"(key_[0-9a-f]{16})\b", done.stdout)
        if made:
            key_id = made.group(1)


def test_every_block_is_run_or_says_why_not() -> None:
    found = blocks()
    run = [b for b in found if b.lang in ("yaml", "markdown", "python", "sh") and not b.not_run]
    assert len(run) >= 15, ids(run)  # the README's examples, not a parse that found none
    for block in found:
        if block.not_run is not None:
            assert len(block.not_run) > 10, f"{block.name}: say why it is not run"
