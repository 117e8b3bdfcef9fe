"""An agent file's schedule on two instances sharing a store. Both start within a minute of
an every-minute entry's last fire, so both find it due at once: one run starts, not two; its
response completes, operators see it (API, console), its webhook names it, and the keys that
may read a scheduled run read its answer through the Responses API."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from standardwebhooks import Webhook

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, issue, make_site, serve
from tests.e2e.waiting import until
from tests.upstream import FakeUpstream, Reply
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.e2e

OTHER = "---\nmodel: up/other\n---\nYou help.\n"
DIGEST = """---
model: up/digest
schedule:
  - cron: "* * * * *"
    input: Summarise the last minute.
---
You write digests.
"""


SECRET = "whsec_" + base64.b64encode(b"headend-schedule-hook-secret-012").decode()


@pytest.fixture(scope="module")
def site(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory, receiver: WebhookReceiver
) -> Path:
    hook = (
        f"webhooks:\n  - url: {receiver.url('done')}\n    secret: {SECRET}\n"
        "    events: [response.completed]\n    allow_private: true\n"
    )
    root = tmp_path_factory.mktemp("schedules")
    return make_site(root, upstream, "sc", {"digest": DIGEST, "other": OTHER}, hook)


@pytest.fixture(scope="module")
def two(site: Path, upstream: FakeUpstream) -> Iterator[tuple[RunningServer, RunningServer]]:
    upstream.reset()  # before they start: they fire at once
    upstream.script("sc", Reply(text="All quiet."), Reply(text="A second run!"))
    first = serve(site, "first.log")
    second = serve(site, "second.log")
    yield first, second
    stop_server(first)
    stop_server(second)


def schedules(server: RunningServer) -> list[dict[str, Any]]:
    answer = httpx.get(
        server.base_url + "/admin/schedules", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["data"]
    return found


def test_a_fire_starts_one_run_on_two_instances(
    two: tuple[RunningServer, RunningServer], upstream: FakeUpstream, browser: object
) -> None:
    first, second = two
    (entry,) = schedules(first)
    assert entry["agent"] == "digest"
    assert entry["cron"] == "* * * * *"
    next_fire = entry["next_fire_at"]
    assert time.time() < next_fire <= time.time() + 60

    def completed() -> dict[str, Any] | None:
        (now,) = schedules(second)
        runs = now["last_runs"]
        return runs[0] if runs and runs[0]["status"] == "completed" else None

    run = until(completed, timeout=20)
    # the minute both instances started in (or the next, had the test crossed into it)
    assert run["fire_at"] in (next_fire - 60, next_fire)
    assert run["error"] is None
    time.sleep(2)  # had the other instance fired too, its run would be here by now
    (after,) = schedules(first)
    fires = [r["fire_at"] for r in after["last_runs"]]
    assert len(fires) == len(set(fires))  # one run per fire, not one per instance
    assert len(upstream.received("sc")) == len(fires)
    sent = upstream.received("sc")[0].body["messages"]
    assert sent[-1] == {"role": "user", "content": "Summarise the last minute."}

    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    page = browser.new_page(viewport={"width": 360, "height": 800})
    page.goto(first.base_url + "/console")
    page.fill("#key", ADMIN)
    page.click("#sign-in-form button[type=submit]")
    page.click("#nav-schedules")
    shown = page.locator("#schedules-body tr", has_text="digest")
    expect(shown).to_contain_text("* * * * * (UTC)")
    expect(shown).to_contain_text(f"completed · {run['response_id']}")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    page.close()


def test_a_scheduled_runs_webhook_names_an_answer_the_keys_allowed_its_agent_read(
    two: tuple[RunningServer, RunningServer], receiver: WebhookReceiver
) -> None:
    first, second = two

    def told() -> dict[str, Any] | None:
        for hook in receiver.hooks("done"):
            event: dict[str, Any] = Webhook(SECRET).verify(hook.body, hook.headers)
            return event
        return None

    event = until(told, timeout=90)
    assert event["type"] == "response.completed"
    response_id = event["data"]["id"]

    def read(server: RunningServer, key: str) -> Any:
        client = openai.OpenAI(base_url=server.api, api_key=key, max_retries=0)
        return client.responses.retrieve(response_id)

    answer = read(second, ADMIN)  # an admin key, on either instance
    assert answer.status == "completed"
    assert answer.output_text in ("All quiet.", "A second run!")
    allowed = str(issue(first, name="digest-reader", scopes=["chat"], agents=["digest"])["secret"])
    assert read(first, allowed).output_text == answer.output_text
    other = str(issue(first, name="other-only", scopes=["chat"], agents=["other"])["secret"])
    with pytest.raises(openai.NotFoundError):
        read(first, other)  # a key not allowed the agent: as if there were no such response
    listing = str(issue(first, name="models-only", scopes=["models:read"])["secret"])
    with pytest.raises((openai.NotFoundError, openai.PermissionDeniedError)):
        read(first, listing)
