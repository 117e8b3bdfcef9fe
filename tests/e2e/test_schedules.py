"""An agent file's schedule on two instances sharing a store. Both start within a minute of
an every-minute entry's last fire, so both find it due at once: one run starts, not two; its
response completes, and operators see it (API, console)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, make_site, serve
from tests.e2e.waiting import until
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

DIGEST = """---
model: up/digest
schedule:
  - cron: "* * * * *"
    input: Summarise the last minute.
---
You write digests.
"""


@pytest.fixture(scope="module")
def site(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_site(tmp_path_factory.mktemp("schedules"), upstream, "sc", {"digest": DIGEST})


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
