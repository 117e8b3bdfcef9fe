"""Live changes, end to end: an edited agent file is served as its next version without a
restart, a new file is a new agent and a removed one is gone; a file that no longer
validates keeps its last good version serving and is reported (log, /health/ready,
``headend check``); headend.yaml's ``models:`` is followed too; SIGHUP reloads when watching
is off; a request already running finishes on the version it started with; and what the
API publishes on one instance is served by another sharing the store (SQLite file and
PostgreSQL)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, HI, make_site, serve
from tests.postgres import store_of
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

HEADERS = {"Authorization": f"Bearer {ADMIN}"}
FIRST = "---\nmodel: gpt\n---\nYou are support, first.\n"
SECOND = "---\nmodel: gpt\n---\nYou are support, second.\n"
WAIT = 15.0  # seconds a change may take to show here at most (it takes about one)


def version_of(server: RunningServer, name: str) -> int | None:
    found = httpx.get(server.api + f"/models/{name}", headers=HEADERS)
    if found.status_code == 404:
        return None
    version: int | None = found.json().get("version")
    return version


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {WAIT:g} s: {what}")


def chat(server: RunningServer, model: str) -> httpx.Response:
    return httpx.post(
        server.api + "/chat/completions",
        json={"model": model, "messages": HI},
        headers=HEADERS,
        timeout=30,
    )


def prompt_sent(fake: FakeUpstream, prefix: str) -> str:
    prompt: str = fake.received(prefix)[-1].body["messages"][0]["content"]
    return prompt


def edit(path: Path, text: str) -> None:
    """Write as an editor would, and make sure the change looks like one (mtime, size)."""
    path.write_text(text)


@pytest.fixture
def site(upstream: FakeUpstream, tmp_path: Path) -> Path:
    return make_site(tmp_path, upstream, "live", {"support": FIRST})


@pytest.fixture
def server(site: Path) -> Iterator[RunningServer]:
    running = serve(site)
    yield running
    stop_server(running)


def test_an_edited_file_is_served_as_its_next_version_without_a_restart(
    site: Path, server: RunningServer, fake: FakeUpstream
) -> None:
    assert version_of(server, "support") == 1
    edit(site / "agents" / "support.md", SECOND)
    eventually(lambda: version_of(server, "support") == 2, "support at version 2")
    assert chat(server, "support").status_code == 200
    assert prompt_sent(fake, "live") == "You are support, second."
    assert chat(server, "support@1").status_code == 200  # the history is all there
    assert prompt_sent(fake, "live") == "You are support, first."

    edit(site / "agents" / "sales.md", "---\nmodel: gpt\n---\nYou sell.\n")
    eventually(lambda: version_of(server, "sales") == 1, "the new agent served")
    (site / "agents" / "sales.md").unlink()
    eventually(lambda: version_of(server, "sales") is None, "the removed agent gone")
    assert chat(server, "sales").status_code == 404
    assert "agent sales: its file is gone" in server.output()


def test_a_file_that_no_longer_validates_keeps_its_last_good_version_and_is_reported(
    site: Path, server: RunningServer, fake: FakeUpstream
) -> None:
    bad = "---\nmodel: gpt\ntemperatur: 0.5\n---\nYou are support, broken.\n"
    edit(site / "agents" / "support.md", bad)

    def reported() -> bool:
        return bool(httpx.get(server.base_url + "/health/ready").json().get("problems"))

    eventually(reported, "the problem in /health/ready")
    ready = httpx.get(server.base_url + "/health/ready")
    assert ready.status_code == 200  # it serves: only not as the file says
    assert ready.json()["problems"] == [
        "agent support: its file does not validate; serving version 1"
    ]
    assert "temperatur" not in ready.text  # the file's text is for the log, not the public
    assert "agent support (still serving version 1)" in server.output()
    assert "temperatur: unknown key" in server.output()
    assert chat(server, "support").status_code == 200
    assert prompt_sent(fake, "live") == "You are support, first."

    check = subprocess.run(
        [sys.executable, "-m", "headend", "check", "--config", str(site / "headend.yaml")],
        capture_output=True,
        text=True,
        cwd=site,
        timeout=60,
    )
    assert check.returncode == 1
    assert f"{site / 'agents' / 'support.md'}: temperatur" in check.stderr

    edit(site / "agents" / "support.md", SECOND)
    eventually(lambda: version_of(server, "support") == 2, "the fixed file served")
    assert "problems" not in httpx.get(server.base_url + "/health/ready").json()


def test_model_routes_follow_headend_yaml(
    site: Path, server: RunningServer, fake: FakeUpstream
) -> None:
    uses_fast = "---\nmodel: fast\n---\nYou are quick.\n"
    edit(site / "agents" / "quick.md", uses_fast)  # no route 'fast' yet: reported, not served
    eventually(
        lambda: (
            "agent quick: its file does not validate; not served"
            in httpx.get(server.base_url + "/health/ready").json().get("problems", [])
        ),
        "the agent on a missing route reported",
    )
    config = site / "headend.yaml"
    edit(config, config.read_text() + "  fast: up/fast-model\n")
    eventually(lambda: version_of(server, "quick") == 1, "the agent on the new route served")
    models = httpx.get(server.api + "/models", headers=HEADERS).json()["data"]
    assert "fast" in [entry["id"] for entry in models]
    assert chat(server, "fast").status_code == 200
    assert fake.received("live")[-1].body["model"] == "fast-model"
    assert chat(server, "quick").status_code == 200
    assert prompt_sent(fake, "live") == "You are quick."

    edit(config, config.read_text() + "  broken: [\n")  # YAML that does not parse
    eventually(
        lambda: (
            "headend.yaml: does not validate; model routes unchanged"
            in httpx.get(server.base_url + "/health/ready").json().get("problems", [])
        ),
        "the broken headend.yaml reported",
    )
    assert chat(server, "fast").status_code == 200  # the routes it had


def test_sighup_reloads_when_watching_is_off(upstream: FakeUpstream, tmp_path: Path) -> None:
    site = make_site(tmp_path, upstream, "live", {"support": FIRST}, "reload: {watch: false}\n")
    server = serve(site)
    try:
        edit(site / "agents" / "support.md", SECOND)
        time.sleep(2.5)  # more than a watcher would need: none is watching
        assert version_of(server, "support") == 1
        server.process.send_signal(signal.SIGHUP)
        eventually(lambda: version_of(server, "support") == 2, "reloaded on SIGHUP")
        assert server.process.poll() is None  # a hang-up does not end it
    finally:
        stop_server(server)


def test_a_running_request_finishes_on_the_version_it_started_with(
    site: Path, server: RunningServer, fake: FakeUpstream
) -> None:
    acting = "---\nmodel: gpt\ntools: [calculator]\n---\nYou compute, first.\n"
    edit(site / "agents" / "worker.md", acting)
    eventually(lambda: version_of(server, "worker") == 1, "the worker served")
    fake.script(
        "live",
        Reply(
            text="",
            tool_calls=[{"id": "c1", "name": "calculator", "arguments": '{"expression": "2+2"}'}],
            first_delay=3.0,  # the file changes while the first model call runs
        ),
        Reply(text="Four."),
    )
    answer: dict[str, Any] = {}

    def run() -> None:
        answer["response"] = chat(server, "worker")

    running = threading.Thread(target=run)
    running.start()
    eventually(lambda: len(fake.received("live")) == 1, "the first model call")
    edit(site / "agents" / "worker.md", acting.replace("first", "second"))
    eventually(lambda: version_of(server, "worker") == 2, "the new version served")
    running.join(timeout=30)
    response = answer["response"]
    assert response.status_code == 200, response.text
    calls = fake.received("live")
    assert len(calls) == 2
    assert calls[1].body["messages"][0]["content"] == "You compute, first."  # not second
    session = httpx.get(
        server.api + f"/sessions/{response.json()['session_id']}", headers=HEADERS
    ).json()
    assert session["turn_versions"] == [{"turn": 0, "agent_version": 1}]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_publish_on_one_instance_is_served_by_another_sharing_the_store(
    backend: str, request: pytest.FixtureRequest, upstream: FakeUpstream, tmp_path: Path
) -> None:
    store = store_of(request, backend, "live", f"sqlite:///{tmp_path / 'shared.db'}")
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one_site = make_site(tmp_path / "one", upstream, "live", {}, f"store: {store}\n")
    two_site = make_site(tmp_path / "two", upstream, "live", {}, f"store: {store}\n")
    one, two = serve(one_site), serve(two_site)
    try:

        def admin(method: str, path: str, body: object = None) -> httpx.Response:
            return httpx.request(
                method, one.base_url + "/admin/agents" + path, json=body, headers=HEADERS
            )

        assert admin("POST", "", {"id": "faq", "model": "gpt", "prompt": "One."}).is_success
        assert admin("POST", "/faq/publish").json()["version"] == 1
        eventually(lambda: version_of(two, "faq") == 1, "version 1 on the other instance")
        admin("PUT", "/faq/draft", {"model": "gpt", "prompt": "Two."})
        admin("POST", "/faq/publish")
        eventually(lambda: version_of(two, "faq") == 2, "version 2 on the other instance")
        admin("POST", "/faq/publish", {"version": 1})
        eventually(lambda: version_of(two, "faq") == 1, "the rollback on the other instance")
        assert admin("DELETE", "/faq").is_success
        eventually(lambda: version_of(two, "faq") is None, "the deletion on the other instance")
        assert "agent faq: now serving version 2" in two.output()
    finally:
        stop_server(one)
        stop_server(two)
