"""``Idempotency-Key`` on the four POSTs that create answers: run once per key and caller,
the answer replayed to a retry (across a restart too), 409 while the first runs or when the
body differs, and a failed first run given up so its retry runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from anthropic.types import MessageParam

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, HI, issue, make_site, serve
from tests.upstream import FakeUpstream, Reply, Status

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def site_root(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_site(tmp_path_factory.mktemp("idem"), upstream, "i", {})


@pytest.fixture(scope="module")
def site(site_root: Path) -> Iterator[RunningServer]:
    server = serve(site_root)
    yield server
    stop_server(server)


def post(
    server: RunningServer, key: str, body: dict[str, object], secret: str = ADMIN
) -> httpx.Response:
    return httpx.post(
        server.api + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": key},
        timeout=30,
    )


BODY: dict[str, object] = {"model": "gpt", "messages": HI}


def test_a_retry_gets_the_first_answer(site: RunningServer, fake: FakeUpstream) -> None:
    fake.script("i", Reply(text="only once"), Reply(text="a second run"))
    first = post(site, "order-1", BODY)
    again = post(site, "order-1", BODY)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert again.json()["choices"][0]["message"]["content"] == "only once"
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(fake.received("i")) == 1


def test_another_body_or_a_running_first_gets_409(site: RunningServer, fake: FakeUpstream) -> None:
    fake.script("i", Reply(text="slow", first_delay=1.5))
    slow: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: slow.append(post(site, "order-2", BODY)))
    thread.start()
    while not fake.received("i"):
        threading.Event().wait(0.02)
    running = post(site, "order-2", BODY)
    assert running.status_code == 409
    assert running.json()["error"]["code"] == "idempotency_conflict"
    assert "still running" in running.json()["error"]["message"]
    thread.join(10)
    assert slow[0].status_code == 200
    other = post(site, "order-2", {**BODY, "temperature": 0.5})
    assert other.status_code == 409
    assert "different request body" in other.json()["error"]["message"]
    assert post(site, "order-2", BODY).json()["choices"][0]["message"]["content"] == "slow"
    assert len(fake.received("i")) == 1


def test_keys_are_per_caller(site: RunningServer, fake: FakeUpstream) -> None:
    fake.script("i", Reply(text="for admin"), Reply(text="for the other key"))
    other = str(issue(site, name="other", scopes=["chat"])["secret"])
    assert post(site, "shared-name", BODY).json()["choices"][0]["message"]["content"] == (
        "for admin"
    )
    theirs = post(site, "shared-name", BODY, other)
    assert theirs.json()["choices"][0]["message"]["content"] == "for the other key"
    assert "idempotent-replayed" not in theirs.headers


def test_a_failed_first_run_is_run_again(site: RunningServer, fake: FakeUpstream) -> None:
    fake.script("i", Status(500), Reply(text="second time lucky"))
    assert post(site, "order-3", BODY).status_code == 502
    retried = post(site, "order-3", BODY)
    assert retried.status_code == 200
    assert retried.json()["choices"][0]["message"]["content"] == "second time lucky"
    assert "idempotent-replayed" not in retried.headers


def test_a_stream_is_replayed_and_bad_keys_are_refused(
    site: RunningServer, fake: FakeUpstream
) -> None:
    fake.script("i", Reply(text="streamed words"))
    body = {**BODY, "stream": True}
    first = post(site, "order-4", body)
    again = post(site, "order-4", body)
    assert again.headers["content-type"].startswith("text/event-stream")
    assert again.text == first.text
    assert "data: [DONE]" in again.text
    too_long = post(site, "x" * 300, BODY)
    assert too_long.status_code == 400
    assert too_long.json()["error"]["code"] == "invalid_idempotency_key"


def test_responses_and_messages_through_the_sdks(site: RunningServer, fake: FakeUpstream) -> None:
    fake.script("i", Reply(text="responses answer"), Reply(text="messages answer"))
    client = openai.OpenAI(base_url=site.api, api_key=ADMIN, max_retries=0)
    headers = {"Idempotency-Key": "resp-1"}
    first = client.responses.create(model="gpt", input="Hi", extra_headers=headers)
    again = client.responses.create(model="gpt", input="Hi", extra_headers=headers)
    assert again.id == first.id
    assert again.output_text == "responses answer"
    claude = anthropic.Anthropic(base_url=site.base_url, api_key=ADMIN, max_retries=0)
    question: list[MessageParam] = [{"role": "user", "content": "Hi"}]
    once = {"Idempotency-Key": "msg-1"}
    one = claude.messages.create(model="gpt", max_tokens=50, messages=question, extra_headers=once)
    two = claude.messages.create(model="gpt", max_tokens=50, messages=question, extra_headers=once)
    assert two.id == one.id
    assert len(fake.received("i")) == 2


def test_it_holds_across_a_restart(site_root: Path, fake: FakeUpstream) -> None:
    fake.script("i", Reply(text="before the restart"), Reply(text="after"))
    server = serve(site_root, "restart-1.log")
    try:
        first = post(server, "order-5", BODY)
    finally:
        stop_server(server)
    server = serve(site_root, "restart-2.log")
    try:
        again = post(server, "order-5", BODY)
    finally:
        stop_server(server)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
