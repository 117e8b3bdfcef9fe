"""Webhooks for background responses: OpenAI's events, signed per Standard Webhooks (checked
with the ``standardwebhooks`` package), retried with backoff, fenced, delivered at least once
across a kill -9, and visible to operators."""

from __future__ import annotations

import base64
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from standardwebhooks import Webhook

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, make_site, serve
from tests.e2e.waiting import until
from tests.upstream import FakeUpstream, Reply, Status
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.e2e

SECRET = "whsec_" + base64.b64encode(b"headend-webhook-test-secret-0123").decode()
OTHER = "whsec_" + base64.b64encode(b"another-webhook-test-secret-4567").decode()
HOOKS = """
webhooks:
  - url: {ok}
    secret: ${{HOOK_SECRET}}
    events: [response.completed, response.cancelled]
    allow_private: true
    backoff: 0.2
  - url: {flaky}
    secret: {other}
    allow_private: true
    backoff: 0.2
    timeout: 2
  - url: {fenced}
    secret: {other}
    max_attempts: 2
    backoff: 0.1
"""


@pytest.fixture
def hooks(receiver: WebhookReceiver) -> WebhookReceiver:
    receiver.reset()
    return receiver


def hook_site(root: Path, upstream: FakeUpstream, receiver: WebhookReceiver) -> Path:
    extra = HOOKS.format(
        ok=receiver.url("ok"),
        flaky=receiver.url("flaky"),
        fenced=receiver.url("fenced"),  # loopback, not allowed: the fence refuses it
        other=OTHER,
    )
    agents = {
        "helper": "---\nmodel: up/helper\n---\nBe helpful.\n",
        "guarded": "---\nmodel: up/helper\ntools: [terminal]\nrequire_approval: always\n---\n"
        "You act.\n",
    }
    return make_site(root, upstream, "hk", agents, extra)


def start(site: Path, log: str = "server.log") -> RunningServer:
    return serve(site, log, env={"HOOK_SECRET": SECRET})


@pytest.fixture(scope="module")
def served(
    upstream: FakeUpstream, receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    server = start(hook_site(tmp_path_factory.mktemp("webhooks"), upstream, receiver))
    yield server
    stop_server(server)


def sdk(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api, api_key=ADMIN, max_retries=0)


def deliveries(server: RunningServer, **params: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        server.base_url + "/admin/webhooks/deliveries",
        params=params,
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["data"]
    return found


def of_response(server: RunningServer, response_id: str) -> dict[str, dict[str, Any]]:
    """This response's deliveries, by the endpoint's path."""
    return {
        d["endpoint"].rsplit("/", 1)[1]: d
        for d in deliveries(server)
        if d["response_id"] == response_id
    }


def settled(
    server: RunningServer, response_id: str, endpoint: str, status: str
) -> dict[str, dict[str, Any]] | None:
    """The response's deliveries, once the one to ``endpoint`` has ``status``."""
    found = of_response(server, response_id)
    return found if found.get(endpoint, {}).get("status") == status else None


def test_a_finished_response_is_told_signed_retried_and_fenced(
    served: RunningServer, fake: FakeUpstream, hooks: WebhookReceiver
) -> None:
    hooks.answer("flaky", 500, 503)
    fake.script("hk", Reply(text="Done."))
    queued = sdk(served).responses.create(model="helper", input="Hi", background=True)
    until(lambda: len(hooks.hooks("flaky")) == 3 and hooks.hooks("ok"))

    ok = hooks.hooks("ok")
    assert len(ok) == 1
    event = Webhook(SECRET).verify(ok[0].body, ok[0].headers)
    assert event["type"] == "response.completed"
    assert event["object"] == "event"
    assert event["data"] == {"id": queued.id}
    assert event["id"].startswith("evt_")
    assert ok[0].headers["webhook-id"] == event["id"]
    assert isinstance(event["created_at"], int)
    # the openai SDK's own verifier takes it as its typed event
    unwrapped = openai.OpenAI(api_key="unused", webhook_secret=SECRET).webhooks.unwrap(
        ok[0].body.decode(), ok[0].headers
    )
    assert unwrapped.type == "response.completed"
    assert unwrapped.data.id == queued.id
    with pytest.raises(Exception, match="signature"):
        Webhook(OTHER).verify(ok[0].body, ok[0].headers)  # signed with its own secret only

    flaky = hooks.hooks("flaky")
    assert [hook.answered for hook in flaky] == [500, 503, 200]
    assert {hook.headers["webhook-id"] for hook in flaky} == {event["id"]}  # one event, retried
    for hook in flaky:
        assert Webhook(OTHER).verify(hook.body, hook.headers)["data"] == {"id": queued.id}
    first, second, third = (int(hook.headers["webhook-timestamp"]) for hook in flaky)
    assert first <= second <= third

    assert hooks.hooks("fenced") == []  # a loopback address the endpoint did not allow
    seen = until(lambda: settled(served, queued.id, "fenced", "failed"))
    assert seen["ok"]["status"] == "delivered"
    assert seen["ok"]["attempts"] == 1
    assert seen["flaky"]["status"] == "delivered"
    assert seen["flaky"]["attempts"] == 3
    assert seen["flaky"]["last_status"] == 200
    assert seen["fenced"]["attempts"] == 2
    assert "refused" in seen["fenced"]["last_error"]
    assert seen["ok"]["event"] == event
    pending = deliveries(served, status="failed")
    assert any(d["id"] == seen["fenced"]["id"] for d in pending)


def test_each_endpoint_gets_the_events_it_asked_for(
    served: RunningServer, fake: FakeUpstream, hooks: WebhookReceiver
) -> None:
    fake.script("hk", Status(500, {"error": {"message": "down"}}))
    client = sdk(served)
    failed = client.responses.create(model="helper", input="Hi", background=True)
    until(lambda: hooks.hooks("flaky"))
    fake.script("hk", Reply(text=" ".join(["word"] * 200), chunk_delay=0.05))
    slow = client.responses.create(model="helper", input="Hi", background=True)
    until(lambda: client.responses.retrieve(slow.id).output_text)
    assert client.responses.cancel(slow.id).status == "cancelled"
    until(lambda: len(hooks.hooks("flaky")) == 2 and hooks.hooks("ok"))

    told = [Webhook(OTHER).verify(h.body, h.headers) for h in hooks.hooks("flaky")]
    assert [(e["type"], e["data"]["id"]) for e in told] == [
        ("response.failed", failed.id),
        ("response.cancelled", slow.id),
    ]
    # "ok" asked for completed and cancelled only: not told of the failure
    ok = [Webhook(SECRET).verify(h.body, h.headers) for h in hooks.hooks("ok")]
    assert [(e["type"], e["data"]["id"]) for e in ok] == [("response.cancelled", slow.id)]


def test_a_run_that_stops_to_ask_a_person_is_told_and_its_answer_goes_on_in_the_background(
    served: RunningServer, fake: FakeUpstream, hooks: WebhookReceiver, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    command = {"command": f"echo yes > {ledger}"}
    fake.script(
        "hk",
        Reply(
            text="", tool_calls=[{"id": "c1", "name": "terminal", "arguments": json.dumps(command)}]
        ),
    )
    client = sdk(served)
    queued = client.responses.create(model="guarded", input="Write it.", background=True)
    until(lambda: hooks.hooks("ok"))
    (first,) = [Webhook(SECRET).verify(h.body, h.headers) for h in hooks.hooks("ok")]
    assert (first["type"], first["data"]["id"]) == ("response.completed", queued.id)
    stopped = client.responses.retrieve(queued.id)
    (request,) = [item for item in stopped.output if item.type == "mcp_approval_request"]
    assert json.loads(request.arguments) == command
    assert not ledger.exists()  # told while it waits, before anything ran

    fake.script("hk", Reply(text="Written."))
    approved: list[Any] = [
        {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
    ]
    going = client.responses.create(
        model="guarded", previous_response_id=queued.id, input=approved, background=True
    )
    until(lambda: len(hooks.hooks("ok")) == 2)
    second = Webhook(SECRET).verify(hooks.hooks("ok")[1].body, hooks.hooks("ok")[1].headers)
    assert (second["type"], second["data"]["id"]) == ("response.completed", going.id)
    assert client.responses.retrieve(going.id).output_text == "Written."
    assert ledger.read_text() == "yes\n"


def test_a_delivery_survives_a_kill_9(
    upstream: FakeUpstream,
    hooks: WebhookReceiver,
    tmp_path: Path,
) -> None:
    upstream.reset()
    site = hook_site(tmp_path, upstream, hooks)
    hooks.answer("flaky", 503, 503)
    upstream.script("hk", Reply(text="Done."))
    server = start(site, "first.log")
    try:
        queued = sdk(server).responses.create(model="helper", input="Hi", background=True)
        until(lambda: hooks.hooks("flaky"))  # its first attempt failed: the next one waits
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
    finally:
        stop_server(server)
    again = start(site, "second.log")
    try:
        until(lambda: len(hooks.hooks("flaky")) == 3)
        answers = [hook.answered for hook in hooks.hooks("flaky")]
        assert answers == [503, 503, 200]
        assert len(hooks.hooks("ok")) == 1  # delivered before the kill, not again
        seen = until(lambda: settled(again, queued.id, "flaky", "delivered"))
        assert seen["flaky"]["attempts"] == 3
    finally:
        stop_server(again)


def test_serve_refuses_a_webhook_without_a_secret(tmp_path: Path) -> None:
    from headend.config import check_webhooks, load_settings
    from headend.errors import ConfigError

    config = tmp_path / "headend.yaml"
    config.write_text("webhooks:\n  - url: https://hooks.example.com/x\n    secret: ''\n")
    with pytest.raises(ConfigError, match=r"webhooks\[0\]\.secret: empty"):
        check_webhooks(load_settings(config, env={}))
    config.write_text("webhooks:\n  - url: https://hooks.example.com/x\n    secret: sekrit\n")
    with pytest.raises(ConfigError, match="whsec_"):
        load_settings(config, env={})
    config.write_text(
        f"webhooks:\n  - url: https://h.example.com/x\n    secret: {SECRET}\n"
        "    events: [response.done]\n"
    )
    with pytest.raises(ConfigError, match="unknown events"):
        load_settings(config, env={})
    config.write_text("webhooks:\n  - url: https://h.example.com/x\n    secret: ${NOT_SET}\n")
    with pytest.raises(ConfigError, match="NOT_SET"):
        load_settings(config, env={})
    assert load_settings(config, env={}, secrets=False).webhooks[0].secret == ""


@pytest.mark.parametrize("width", [1280, 360])
def test_the_console_shows_each_delivery_and_why_it_failed(
    served: RunningServer, fake: FakeUpstream, hooks: WebhookReceiver, browser: object, width: int
) -> None:
    from playwright.sync_api import Browser, expect

    fake.script("hk", Reply(text="Done."))
    queued = sdk(served).responses.create(model="helper", input="Hi", background=True)
    until(lambda: settled(served, queued.id, "fenced", "failed"))

    assert isinstance(browser, Browser)
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(served.base_url + "/console")
    page.fill("#key", ADMIN)
    page.click("#sign-in-form button[type=submit]")
    page.click("#nav-webhooks")
    mine = page.locator("#webhooks-body tr", has_text=queued.id)
    expect(mine).to_have_count(3)
    fenced = mine.filter(has_text="/fenced")
    expect(fenced).to_contain_text("failed")
    expect(fenced).to_contain_text("refused")
    expect(mine.filter(has_text="/ok")).to_contain_text("delivered")
    page.select_option("#webhooks-status", "failed")
    expect(page.locator("#webhooks-body tr", has_text=queued.id)).to_have_count(1)
    width_now = page.evaluate("() => document.documentElement.scrollWidth")
    assert width_now <= width  # on a phone, the rows are cards: nothing scrolls sideways
    page.close()
