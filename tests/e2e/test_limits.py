"""Rates, concurrency queues and usage, through the openai SDK and raw HTTP."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, HI, issue, make_site, serve
from tests.upstream import FakeUpstream, Reply, Status

pytestmark = pytest.mark.e2e

LIMITS = """
limits:
  max_queue: 1
  queue_timeout: 1s
"""
AGENTS = {
    "solo": "---\nmodel: up/solo\nmax_concurrency: 1\n---\n",
    "crowd": "---\nmodel: up/crowd\n---\n",
}


@pytest.fixture(scope="module")
def limited(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    server = serve(make_site(tmp_path_factory.mktemp("limits"), upstream, "l", AGENTS, LIMITS))
    yield server
    stop_server(server)


def new_secret(server: RunningServer, **body: object) -> str:
    return str(issue(server, **body)["secret"])


def sdk(server: RunningServer, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api, api_key=secret, max_retries=0)


def chat(
    server: RunningServer,
    model: str,
    secret: str = ADMIN,
    *,
    timeout: float = 30,
    **extra: object,
) -> httpx.Response:
    return httpx.post(
        server.api + "/chat/completions",
        json={"model": model, "messages": HI, **extra},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=timeout,
    )


def test_requests_per_minute(limited: RunningServer, fake: FakeUpstream) -> None:
    refused = httpx.post(
        limited.base_url + "/admin/keys",
        json={"name": "zero", "rpm": 0},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "rpm"
    client = sdk(limited, new_secret(limited, name="rpm", scopes=["chat"], rpm=2))
    first = client.chat.completions.with_raw_response.create(model="gpt", messages=HI)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"].endswith(("s", "ms"))
    second = client.chat.completions.with_raw_response.create(model="crowd", messages=HI)
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt", messages=HI)
    error = caught.value
    assert error.status_code == 429
    assert error.code == "rate_limit_exceeded"
    assert error.type == "requests"
    headers = error.response.headers
    assert 1 <= int(headers["retry-after"]) <= 30  # half a minute refills one of two
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert len(fake.received("l")) == 2  # the refused request never reached the upstream
    # streaming requests are refused the same way, before any stream starts
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt", messages=HI, stream=True)


def test_tokens_per_minute(limited: RunningServer, fake: FakeUpstream) -> None:
    secret = new_secret(limited, name="tpm", scopes=["chat"], tpm=20)
    fake.script("l", Reply(usage=(5, 7)), Reply(usage=(5, 7)))
    first = chat(limited, "gpt", secret)
    assert first.headers["x-ratelimit-limit-tokens"] == "20"
    assert first.headers["x-ratelimit-remaining-tokens"] == "20"  # spent after the answer
    assert chat(limited, "gpt", secret).headers["x-ratelimit-remaining-tokens"] == "8"
    refused = chat(limited, "gpt", secret)  # 24 of 20 tokens used: wait for the refill
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "tokens"
    assert int(refused.headers["retry-after"]) >= 1


def run_in_thread(work: object) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(work()))  # type: ignore[operator]
    thread.start()
    return thread, out


def test_an_agent_runs_its_limit_at_once_and_queues_the_rest_in_order(
    limited: RunningServer, fake: FakeUpstream
) -> None:
    fake.script("l", Reply(text="first", first_delay=0.6), Reply(text="second"))
    first, first_out = run_in_thread(lambda: chat(limited, "solo"))
    time.sleep(0.2)
    second, second_out = run_in_thread(lambda: chat(limited, "solo"))
    time.sleep(0.2)
    third = chat(limited, "solo")  # one runs, one waits: the queue of one is full
    assert third.status_code == 429
    assert third.json()["error"]["type"] == "concurrency"
    assert third.json()["error"]["code"] == "rate_limit_exceeded"
    assert third.headers["retry-after"] == "1"
    first.join(10)
    second.join(10)
    answers = [out[0].json()["choices"][0]["message"]["content"] for out in (first_out, second_out)]  # type: ignore[attr-defined]
    assert answers == ["first", "second"]
    received = fake.received("l")
    assert len(received) == 2  # the queued one reached the upstream only after the first
    assert received[1].started - received[0].started >= 0.55
    # other agents have their own pool
    assert chat(limited, "crowd").status_code == 200


def test_waiting_past_the_queue_timeout_is_a_429(
    limited: RunningServer, fake: FakeUpstream
) -> None:
    fake.script("l", Reply(first_delay=2.0))
    slow, _ = run_in_thread(lambda: chat(limited, "solo"))
    time.sleep(0.2)
    started = time.monotonic()
    waited = chat(limited, "solo")
    assert waited.status_code == 429
    assert 0.9 <= time.monotonic() - started < 1.8
    assert "Waited 1s for a free slot" in waited.json()["error"]["message"]
    slow.join(10)


def test_slots_come_back_after_disconnects_and_failures(
    limited: RunningServer, fake: FakeUpstream
) -> None:
    words = " ".join(f"w{i}" for i in range(40))
    fake.script(
        "l",
        Reply(text=words, chunk_delay=0.2),  # a stream the client leaves
        Reply(first_delay=5.0),  # an answer the client stops waiting for
        Reply(first_delay=5.0),  # a stream the client leaves before its first byte
        Status(500),  # a run that fails
        Reply(text="still here"),
    )
    with httpx.stream(
        "POST",
        limited.api + "/chat/completions",
        json={"model": "solo", "messages": HI, "stream": True},
        headers={"Authorization": f"Bearer {ADMIN}"},
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                break
    with pytest.raises(httpx.ReadTimeout):
        chat(limited, "solo", timeout=0.5)
    with pytest.raises(httpx.ReadTimeout):
        chat(limited, "solo", timeout=0.5, stream=True)
    assert chat(limited, "solo").status_code == 502
    # Had any of the four kept its slot, this would wait 1 s and get a 429.
    started = time.monotonic()
    answer = chat(limited, "solo")
    assert answer.status_code == 200, answer.text
    assert time.monotonic() - started < 0.9
    assert answer.json()["choices"][0]["message"]["content"] == "still here"


def test_a_keys_own_concurrency(limited: RunningServer, fake: FakeUpstream) -> None:
    secret = new_secret(limited, name="one-at-a-time", scopes=["chat"], max_concurrency=1)
    fake.script("l", Reply(first_delay=1.5))
    slow, _ = run_in_thread(lambda: chat(limited, "gpt", secret))
    time.sleep(0.2)
    assert chat(limited, "gpt", secret).status_code == 429  # waited 1 s, in vain
    assert chat(limited, "gpt").status_code == 200  # other keys are not held up
    slow.join(10)
    assert chat(limited, "gpt", secret).status_code == 200


def test_usage_is_counted_per_key_and_model(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.reset()
    site = make_site(tmp_path, upstream, "u", AGENTS, LIMITS)
    server = serve(site)
    try:
        secret = new_secret(server, name="metered", scopes=["chat"])
        upstream.script("u", Reply(usage=(10, 3)), Reply(usage=(20, 4)), Reply(usage=(1, 1)))
        assert chat(server, "gpt", secret).status_code == 200
        stream = chat(server, "gpt", secret, stream=True)
        assert stream.status_code == 200
        assert "[DONE]" in stream.text
        assert chat(server, "crowd", secret).status_code == 200
        admin = {"Authorization": f"Bearer {ADMIN}"}
        rows = httpx.get(server.base_url + "/admin/usage", headers=admin).json()["data"]
        mine = {row["model"]: row for row in rows if row["key_id"] != "admin"}
        assert mine["gpt"]["requests"] == 2
        assert mine["gpt"]["prompt_tokens"] == 30
        assert mine["gpt"]["completion_tokens"] == 7
        assert mine["crowd"]["total_tokens"] == 2
        key_only = httpx.get(
            server.base_url + "/admin/usage",
            params={"key": mine["gpt"]["key_id"]},
            headers=admin,
        ).json()["data"]
        assert {row["model"] for row in key_only} == {"gpt", "crowd"}
        assert httpx.get(server.base_url + "/admin/usage?days=0", headers=admin).status_code == 400
        assert (
            httpx.get(
                server.base_url + "/admin/usage", headers={"Authorization": f"Bearer {secret}"}
            ).status_code
            == 403
        )
    finally:
        stop_server(server)
    printed = subprocess.run(
        [sys.executable, "-m", "headend", "usage", "--config", str(site / "headend.yaml")],
        capture_output=True,
        text=True,
        check=True,
        cwd=site,
    ).stdout
    lines = printed.splitlines()
    assert lines[0].split() == [
        "DAY", "KEY", "NAME", "AGENT/MODEL", "REQUESTS", "PROMPT", "COMPLETION", "TOTAL", "COST",
    ]  # fmt: skip
    gpt = next(line.split() for line in lines if "metered" in line and " gpt " in line)
    assert gpt[-5:] == ["2", "30", "7", "37", "0"]  # no price configured: it costs nothing
    assert lines[-1].split()[0] == "total"
