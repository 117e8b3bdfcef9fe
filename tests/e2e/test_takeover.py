"""A background agent run survives the death of its instance: kill -9 during a tool call, and
another instance sharing the PostgreSQL store takes it up from its last committed step. Every
step happens once: no model call is asked twice, no tool result is run again, a tool cut short
runs again only if it only reads, and the model is told of the one that does not."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import openai
import pytest

from headend.agents.journal import INTERRUPTED
from tests.conftest import stop_server
from tests.e2e.sites import ADMIN, make_site, serve
from tests.e2e.waiting import until
from tests.postgres import fresh_database
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e


class SlowPage:
    """A page on loopback whose first fetch hangs (the instance fetching it dies meanwhile)
    and whose later ones answer at once; it counts them."""

    def __init__(self) -> None:
        self.fetches = 0
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                page.fetches += 1
                if page.fetches == 1:
                    time.sleep(60)
                body = b"the weather is fine"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://localhost:{self.server.server_address[1]}/weather"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def page() -> Iterator[SlowPage]:
    served = SlowPage()
    yield served
    served.close()


def tool_call(call_id: str, name: str, arguments: dict[str, str]) -> dict[str, str]:
    return {"id": call_id, "name": name, "arguments": json.dumps(arguments)}


def test_a_run_killed_during_a_tool_call_completes_on_another_instance_every_step_once(
    upstream: FakeUpstream, postgres_url: str, page: SlowPage, tmp_path: Path
) -> None:
    upstream.reset()
    ledger = tmp_path / "ledger.txt"  # what the shell commands did, line by line
    agent = (
        "---\nmodel: up/worker\ntools: [terminal, http_fetch]\nallow_hosts: [localhost]\n"
        "---\nYou work.\n"
    )
    store = f"store: {fresh_database(postgres_url, 'takeover')}\n"
    site = make_site(tmp_path, upstream, "tk", {"worker": agent}, store)
    upstream.script(
        "tk",
        Reply(
            text="First the ledger. ",
            tool_calls=[tool_call("c1", "terminal", {"command": f"echo one >> {ledger}"})],
            usage=(10, 1),
        ),
        Reply(  # a command that writes, then hangs, beside a fetch that hangs
            text="Now both. ",
            tool_calls=[
                tool_call("c2", "terminal", {"command": f"echo two >> {ledger}; sleep 60"}),
                tool_call("c3", "http_fetch", {"url": page.url}),
            ],
            usage=(20, 2),
        ),
        Reply(text="All done.", usage=(30, 3)),
    )
    doomed, survivor = serve(site, "doomed.log"), serve(site, "survivor.log")
    try:
        sdk = openai.OpenAI(base_url=survivor.api, api_key=ADMIN, max_retries=0)
        on_doomed = openai.OpenAI(base_url=doomed.api, api_key=ADMIN, max_retries=0)
        queued = on_doomed.responses.create(model="worker", input="Work.", background=True)
        until(lambda: ledger.exists() and "two" in ledger.read_text() and page.fetches == 1)
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait(10)
        killed_at = time.monotonic()

        events = list(sdk.responses.retrieve(queued.id, stream=True))
        taken_up_within = time.monotonic() - killed_at
        assert events[-1].type == "response.completed"
        numbers = [e.sequence_number for e in events]
        assert numbers == list(range(len(numbers)))  # one stream, no gap, no repeat
        done = sdk.responses.retrieve(queued.id)
        assert done.status == "completed"
        assert done.output_text == "First the ledger. Now both. All done."

        asked = upstream.received("tk")
        assert len(asked) == 3  # no model call asked twice
        assert ledger.read_text() == "one\ntwo\n"  # no command run twice
        assert page.fetches == 2  # the fetch (it only reads) ran again
        results = {m["tool_call_id"]: m["content"] for m in asked[2].body["messages"][-2:]}
        assert results["c2"] == INTERRUPTED  # the model is told of the command cut short
        assert "the weather is fine" in results["c3"]
        first_result = asked[1].body["messages"][-1]
        assert first_result["tool_call_id"] == "c1"
        assert first_result["content"].startswith("exit code 0")
        # each model call's usage counted once
        assert done.usage is not None
        assert (done.usage.input_tokens, done.usage.output_tokens) == (60, 6)
        assert taken_up_within < 30
        metrics = httpx.get(
            f"{survivor.base_url}/metrics", headers={"Authorization": f"Bearer {ADMIN}"}
        )
        assert 'headend_background_runs_claimed_total{outcome="resumed"} 1.0' in metrics.text
    finally:
        stop_server(doomed)
        stop_server(survivor)


def test_an_instance_thought_dead_that_comes_back_is_fenced_off(
    upstream: FakeUpstream, postgres_url: str, tmp_path: Path
) -> None:
    """Stopped (SIGSTOP) past its lease rather than killed: its run is taken up elsewhere,
    and when it wakes, what it would write is refused; the run ends once, as the other
    instance ended it."""
    upstream.reset()
    ledger = tmp_path / "ledger.txt"
    agent = "---\nmodel: up/worker\ntools: [terminal]\n---\nYou work.\n"
    store = f"store: {fresh_database(postgres_url, 'fenced')}\n"
    site = make_site(tmp_path, upstream, "tf", {"worker": agent}, store)
    command = f"echo one >> {ledger}; sleep 14"
    upstream.script(
        "tf",
        Reply(text="Working. ", tool_calls=[tool_call("c1", "terminal", {"command": command})]),
        Reply(text="Done."),
    )
    paused, survivor = serve(site, "paused.log"), serve(site, "survivor.log")
    try:
        sdk = openai.OpenAI(base_url=survivor.api, api_key=ADMIN, max_retries=0)
        on_paused = openai.OpenAI(base_url=paused.api, api_key=ADMIN, max_retries=0)
        queued = on_paused.responses.create(model="worker", input="Work.", background=True)
        until(lambda: ledger.exists() and "one" in ledger.read_text())
        paused.process.send_signal(signal.SIGSTOP)
        events = list(sdk.responses.retrieve(queued.id, stream=True))
        assert events[-1].type == "response.completed"
        paused.process.send_signal(signal.SIGCONT)
        # it wakes with its tool's result to commit, and finds the run is not its own
        log = tmp_path / "paused.log"
        until(lambda: "taken up by another instance" in log.read_text(), timeout=30)
        done = sdk.responses.retrieve(queued.id)
        assert done.status == "completed"
        assert done.output_text == "Working. Done."
        again = list(sdk.responses.retrieve(queued.id, stream=True))
        assert [e.sequence_number for e in again] == list(range(len(again)))
        assert [e.type for e in again].count("response.completed") == 1
        assert len(upstream.received("tf")) == 2
        assert ledger.read_text() == "one\n"
    finally:
        paused.process.send_signal(signal.SIGCONT)
        stop_server(paused)
        stop_server(survivor)


def test_a_run_killed_on_its_only_instance_goes_on_when_it_starts_again(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    """SQLite, one instance: killed during a tool call, started again on the same file."""
    upstream.reset()
    ledger = tmp_path / "ledger.txt"
    agent = "---\nmodel: up/worker\ntools: [terminal, calculator]\n---\nYou work.\n"
    site = make_site(tmp_path, upstream, "ts", {"worker": agent})
    upstream.script(
        "ts",
        Reply(
            text="Sums first. ",
            tool_calls=[tool_call("c1", "calculator", {"expression": "6*7"})],
        ),
        Reply(
            text="Then the ledger. ",
            tool_calls=[
                tool_call("c2", "terminal", {"command": f"echo two >> {ledger}; sleep 60"})
            ],
        ),
        Reply(text="Done."),
    )
    first = serve(site, "first.log")
    try:
        on_first = openai.OpenAI(base_url=first.api, api_key=ADMIN, max_retries=0)
        queued = on_first.responses.create(model="worker", input="Work.", background=True)
        until(lambda: ledger.exists() and "two" in ledger.read_text())
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
    finally:
        stop_server(first)
    again = serve(site, "again.log")
    try:
        sdk = openai.OpenAI(base_url=again.api, api_key=ADMIN, max_retries=0)
        events = list(sdk.responses.retrieve(queued.id, stream=True))
        assert events[-1].type == "response.completed"
        done = sdk.responses.retrieve(queued.id)
        assert done.output_text == "Sums first. Then the ledger. Done."
        asked = upstream.received("ts")
        assert len(asked) == 3
        assert asked[1].body["messages"][-1]["content"] == "42"
        assert asked[2].body["messages"][-1]["content"] == INTERRUPTED
        assert ledger.read_text() == "two\n"
    finally:
        stop_server(again)
