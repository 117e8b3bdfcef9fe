"""Two headend processes sharing a store and a real Redis enforce one set of limits."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, HI, make_site, serve
from tests.e2e.test_limits import AGENTS, LIMITS, chat, new_secret, sdk
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pair(
    upstream: FakeUpstream, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, RunningServer]]:
    extra = LIMITS + f"redis: {redis_url}\n"
    site = make_site(tmp_path_factory.mktemp("shared"), upstream, "s", AGENTS, extra)
    first = serve(site, "a.log")
    try:
        second = serve(site, "b.log")
    except BaseException:
        stop_server(first)
        raise
    yield first, second
    stop_server(first)
    stop_server(second)


def test_one_rate_limit_across_instances(
    pair: tuple[RunningServer, RunningServer], fake: FakeUpstream
) -> None:
    a, b = pair
    secret = new_secret(a, name="shared-rpm", scopes=["chat"], rpm=3)
    assert sdk(a, secret).chat.completions.create(model="gpt", messages=HI)
    assert sdk(b, secret).chat.completions.create(model="gpt", messages=HI)
    answer = sdk(a, secret).chat.completions.with_raw_response.create(model="gpt", messages=HI)
    assert answer.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as caught:
        sdk(b, secret).chat.completions.create(model="gpt", messages=HI)
    assert caught.value.code == "rate_limit_exceeded"
    assert len(fake.received("s")) == 3


def test_a_revoked_key_is_refused_by_both_within_a_second(
    pair: tuple[RunningServer, RunningServer], fake: FakeUpstream
) -> None:
    a, b = pair
    secret = new_secret(a, name="doomed", scopes=["chat"])
    assert chat(a, "gpt", secret).status_code == 200
    assert chat(b, "gpt", secret).status_code == 200
    key_id = httpx.get(
        a.base_url + "/admin/keys", headers={"Authorization": f"Bearer {ADMIN}"}
    ).json()["data"][-1]["id"]
    revoked = httpx.delete(
        f"{b.base_url}/admin/keys/{key_id}", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert revoked.status_code == 200
    time.sleep(1.05)
    for server in (a, b):
        refused = chat(server, "gpt", secret)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"


def test_one_agent_pool_across_instances(
    pair: tuple[RunningServer, RunningServer], fake: FakeUpstream
) -> None:
    a, b = pair
    fake.script("s", Reply(text="first", first_delay=0.8), Reply(text="second"))
    results: list[httpx.Response] = []
    first = threading.Thread(target=lambda: results.append(chat(a, "solo")))
    first.start()
    time.sleep(0.2)
    second = chat(b, "solo")  # solo runs one at a time, whichever instance serves it
    first.join(10)
    assert [results[0].status_code, second.status_code] == [200, 200]
    assert second.json()["choices"][0]["message"]["content"] == "second"
    received = fake.received("s")
    assert received[1].started - received[0].started >= 0.75
    # the queue is shared too: one waits (here, on a), so one more (on b) is refused
    fake.script("s", Reply(first_delay=0.8))
    running = threading.Thread(target=lambda: chat(a, "solo"))
    running.start()
    time.sleep(0.2)
    waiting = threading.Thread(target=lambda: results.append(chat(a, "solo")))
    waiting.start()
    time.sleep(0.2)
    refused = chat(b, "solo")
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "concurrency"
    running.join(10)
    waiting.join(10)
    assert results[-1].status_code == 200
