"""Budgets, end to end: a key created with ``--budget`` (CLI) or ``budget`` (/admin/keys)
is told what is left of it on every answer, and once its period's spend reaches it every
request is refused with 429 ``insufficient_quota`` saying when the period resets, which the
SDKs do not retry; instances sharing a store (SQLite file, PostgreSQL) count each other's
spend, and a restart forgets none of it."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, HI, command, issue, serve
from tests.postgres import store_of
from tests.upstream import FakeUpstream

pytestmark = pytest.mark.e2e

# Each answer of the fake upstream (5 prompt and 7 completion tokens) costs 0.012.
CONFIG = """
providers:
  up: {{type: openai, base_url: "{url}/v1", retry: {{attempts: 1}},
        price: {{input: 1000, output: 1000}}}}
models:
  gpt: up/gpt
"""
REMAINING = "x-headend-budget-remaining"


def make_site(root: Path, upstream: FakeUpstream, prefix: str, extra: str = "") -> Path:
    (root / "agents").mkdir(parents=True)
    (root / "headend.yaml").write_text(CONFIG.format(url=upstream.url(prefix)) + extra)
    return root


@pytest.fixture(scope="module")
def site(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_site(tmp_path_factory.mktemp("budgets"), upstream, "budget")


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[RunningServer]:
    running = serve(site)
    yield running
    stop_server(running)


def ask(server: RunningServer, secret: str, **extra: object) -> httpx.Response:
    return httpx.post(
        server.api + "/chat/completions",
        json={"model": "gpt", "messages": HI, **extra},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    )


ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}
REFUSALS = re.compile(r'headend_rate_limited_total\{kind="insufficient_quota"\} (\S+)')


def refusals(server: RunningServer) -> float:
    found = REFUSALS.search(httpx.get(server.base_url + "/metrics", headers=ADMIN_HEADERS).text)
    return float(found.group(1)) if found else 0.0


def test_a_key_is_refused_with_insufficient_quota_once_its_budget_is_spent(
    site: Path, server: RunningServer, upstream: FakeUpstream
) -> None:
    printed = command(
        site, "keys", "create", "--name", "capped", "--scope", "chat", "--budget", "0.03",
        "--budget-period", "day",
    )  # fmt: skip
    key_id, secret = printed.split()[0], printed.splitlines()[1]
    assert "budget 0.03/day" in next(
        line for line in command(site, "keys", "list").splitlines() if key_id in line
    )

    first, second = ask(server, secret), ask(server, secret)
    streamed = ask(server, secret, stream=True)
    assert [r.status_code for r in (first, second, streamed)] == [200, 200, 200]
    # What was left when each began (an answer's own cost is known only at its end).
    assert [r.headers[REMAINING] for r in (first, second, streamed)] == ["0.03", "0.018", "0.006"]

    sent = len(upstream.received("budget"))
    before = refusals(server)
    client = openai.OpenAI(base_url=server.api, api_key=secret, max_retries=2)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "Hi"}])
    error = refused.value
    assert error.code == error.type == "insufficient_quota"
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%Y-%m-%d")
    assert "budget of 0.03 per day is spent (0.036 since " in error.message
    assert error.message.endswith(f"It resets at {tomorrow} 00:00 UTC.")
    assert error.response.headers[REMAINING] == "0"
    assert refusals(server) - before == 1  # the SDK did not retry (x-should-retry: false)
    assert len(upstream.received("budget")) == sent  # nothing reached the upstream

    # Every surface refuses it, each in its own shape.
    auth = {"Authorization": f"Bearer {secret}"}
    responses = httpx.post(
        server.api + "/responses", json={"model": "gpt", "input": "Hi"}, headers=auth
    )
    assert (responses.status_code, responses.json()["error"]["code"]) == (
        429,
        "insufficient_quota",
    )
    messages = httpx.post(
        server.api + "/messages",
        json={"model": "gpt", "max_tokens": 10, "messages": HI},
        headers={"x-api-key": secret},
    )
    assert messages.status_code == 429
    assert messages.json()["error"]["type"] == "rate_limit_error"
    assert "budget of 0.03 per day is spent" in messages.json()["error"]["message"]
    assert len(upstream.received("budget")) == sent

    unlimited = issue(server, name="unlimited", scopes=["chat"])
    answered = ask(server, str(unlimited["secret"]))
    assert answered.status_code == 200
    assert REMAINING not in answered.headers


def test_budgets_are_set_through_the_admin_api_and_checked(server: RunningServer) -> None:
    created = issue(server, name="weekly", budget=2.5, budget_period="week")
    assert (created["budget"], created["budget_period"]) == (2.5, "week")
    monthly = issue(server, name="monthly", budget=10)
    assert (monthly["budget"], monthly["budget_period"]) == (10, "month")  # the default
    for body, param in (
        ({"budget": 0}, "budget"),
        ({"budget": -1}, "budget"),
        ({"budget": "5"}, "budget"),
        ({"budget": 5, "budget_period": "year"}, "budget_period"),
        ({"budget_period": "day"}, "budget_period"),
    ):
        refused = httpx.post(
            server.base_url + "/admin/keys",
            json={"name": "bad", **body},
            headers=ADMIN_HEADERS,
        )
        assert refused.status_code == 400, body
        assert refused.json()["error"]["param"] == param, body
    listed = httpx.get(
        server.base_url + "/admin/keys", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert "bad" not in [key["name"] for key in listed.json()["data"]]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_instances_sharing_a_store_count_each_others_spend_and_a_restart_keeps_it(
    backend: str, request: pytest.FixtureRequest, upstream: FakeUpstream, tmp_path: Path
) -> None:
    store = store_of(request, backend, "budget", f"sqlite:///{tmp_path / 'shared.db'}")
    one_site = make_site(tmp_path / "one", upstream, "shared", f"store: {store}\n")
    two_site = make_site(tmp_path / "two", upstream, "shared", f"store: {store}\n")
    one, two = serve(one_site), serve(two_site)
    try:
        secret = str(issue(one, name="shared", budget=0.02, budget_period="week")["secret"])
        assert ask(one, secret).headers[REMAINING] == "0.02"
        assert ask(one, secret).headers[REMAINING] == "0.008"
        assert ask(one, secret).status_code == 429
        # /admin/usage writes this instance's counts now (else within five seconds).
        httpx.get(one.base_url + "/admin/usage", headers=ADMIN_HEADERS)
        refused = ask(two, secret)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "insufficient_quota"
        assert "(0.024 since " in refused.json()["error"]["message"]

        # Without asking: a budgeted key's spend is written within a second or two.
        hasty = str(issue(one, name="hasty", budget=0.01, budget_period="day")["secret"])
        assert ask(one, hasty).status_code == 200  # 0.012: over its budget once done
        time.sleep(3)
        assert ask(two, hasty).status_code == 429

        stop_server(two)
        two = serve(two_site)
        assert ask(two, secret).status_code == 429  # the spend is in the store
    finally:
        stop_server(one)
        stop_server(two)
