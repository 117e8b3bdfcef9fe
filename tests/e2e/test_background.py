"""Background responses through the openai SDK: queued at once, followed and resumed after
any event, cancelled, on one instance or another sharing the store."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import (
    Response,
    ResponseCreatedEvent,
    ResponseOutputMessage,
    ResponseStreamEvent,
)

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, issue, make_site, serve
from tests.e2e.waiting import until
from tests.postgres import fresh_database
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

CLIENTS = Path(__file__).resolve().parent.parent / "clients"
WORDS = " ".join(f"w{n}" for n in range(40))  # the fake upstream streams a word per chunk


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(
    request: pytest.FixtureRequest, upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Two instances share it: SQLite's file, or a PostgreSQL database."""
    agents = {
        "helper": "---\nmodel: up/helper\n---\nBe helpful.\n",
        "maths": "---\nmodel: up/maths\ntools: [calculator]\n---\n",
        "solo": "---\nmodel: up/solo\nmax_concurrency: 1\n---\nOne at a time.\n",
    }
    store = "limits: {max_background_runs: 2}\n"
    if request.param == "postgres":
        store += f"store: {fresh_database(request.getfixturevalue('postgres_url'), 'bg')}\n"
    root = tmp_path_factory.mktemp(f"background-{request.param}")
    return make_site(root, upstream, "bg", agents, store)


@pytest.fixture(scope="module")
def first(site: Path) -> Iterator[RunningServer]:
    server = serve(site, "first.log")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def second(site: Path, first: RunningServer) -> Iterator[RunningServer]:
    """Another instance on the same store (the site's SQLite file)."""
    server = serve(site, "second.log")
    yield server
    stop_server(server)


def client(server: RunningServer, key: str = ADMIN) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api, api_key=key, max_retries=0)


def finished(sdk: openai.OpenAI, response_id: str) -> Response:
    def ended() -> Response | None:
        now = sdk.responses.retrieve(response_id)
        return None if now.status in ("queued", "in_progress") else now

    return until(ended)


def test_a_background_response_answers_at_once_and_finishes_later(
    first: RunningServer, second: RunningServer, fake: FakeUpstream
) -> None:
    fake.script("bg", Reply(text="Paris.", first_delay=0.5, usage=(9, 2)))
    sdk = client(first)
    started = time.monotonic()
    queued = sdk.responses.create(model="gpt", input="Capital of France?", background=True)
    assert time.monotonic() - started < 0.5  # before the upstream has said a word
    assert queued.status == "queued"
    assert queued.background is True
    assert queued.output == []
    done = finished(client(second), queued.id)  # the other instance sees it too
    assert done.status == "completed"
    assert done.output_text == "Paris."
    assert done.usage is not None
    assert (done.usage.input_tokens, done.usage.output_tokens) == (9, 2)
    # a finished background response is a stored response: it may be continued
    fake.script("bg", Reply(text="About 2 million."))
    after = sdk.responses.create(model="gpt", input="People?", previous_response_id=done.id)
    assert after.output_text == "About 2 million."
    sent = fake.received("bg")[-1].body["messages"]
    assert [m["content"] for m in sent] == ["Capital of France?", "Paris.", "People?"]


def test_an_agent_with_tools_runs_in_the_background(
    first: RunningServer, fake: FakeUpstream
) -> None:
    call = {"id": "c1", "name": "calculator", "arguments": '{"expression": "6*7"}'}
    fake.script("bg", Reply(text="", tool_calls=[call]), Reply(text="It is 42."))
    sdk = client(first)
    queued = sdk.responses.create(model="maths", input="6 times 7?", background=True)
    done = finished(sdk, queued.id)
    assert done.status == "completed"
    assert done.output_text == "It is 42."
    tool_result = fake.received("bg")[-1].body["messages"][-1]
    assert tool_result["role"] == "tool"
    assert "42" in tool_result["content"]


def test_a_background_stream_resumes_after_any_event_on_another_instance(
    first: RunningServer, second: RunningServer, fake: FakeUpstream
) -> None:
    fake.script("bg", Reply(text=WORDS, chunk_delay=0.03))
    stream = client(first).responses.create(
        model="helper", input="Count", background=True, stream=True
    )
    seen: list[ResponseStreamEvent] = []
    for event in stream:
        seen.append(event)
        if sum(e.type == "response.output_text.delta" for e in seen) == 5:
            break
    stream.close()  # the client leaves; the run goes on
    assert [e.type for e in seen[:2]] == ["response.created", "response.in_progress"]
    created = seen[0]
    assert created.type == "response.created"
    assert created.response.status == "queued"
    response_id = created.response.id
    last = seen[-1].sequence_number

    rest = list(client(second).responses.retrieve(response_id, stream=True, starting_after=last))
    numbers = [e.sequence_number for e in seen + rest]
    assert numbers == list(range(len(numbers)))  # every event once, in order
    assert rest[-1].type == "response.completed"
    text = "".join(e.delta for e in seen + rest if e.type == "response.output_text.delta")
    assert text == WORDS
    assert rest[-1].response.output_text == WORDS
    # from the start, on the first instance, after the end: the same events again
    again = list(client(first).responses.retrieve(response_id, stream=True))
    assert [e.sequence_number for e in again] == numbers
    assert [e.type for e in again] == [e.type for e in seen + rest]


def test_output_so_far_shows_while_the_run_goes(
    first: RunningServer, second: RunningServer, fake: FakeUpstream
) -> None:
    fake.script("bg", Reply(text=WORDS, chunk_delay=0.1))
    queued = client(first).responses.create(model="gpt", input="Count", background=True)
    other = client(second)

    def partial() -> Response | None:
        now = other.responses.retrieve(queued.id)
        return now if now.status == "in_progress" and now.output_text else None

    during = until(partial)
    with pytest.raises(openai.BadRequestError) as running:  # not before it has answered
        other.responses.create(model="gpt", input="And?", previous_response_id=queued.id)
    assert "continue once it has completed" in running.value.message
    assert WORDS.startswith(during.output_text)
    assert during.output_text != WORDS
    assert finished(other, queued.id).output_text == WORDS


def test_cancel_stops_the_run_from_any_instance_and_is_idempotent(
    first: RunningServer, second: RunningServer, fake: FakeUpstream
) -> None:
    fake.script("bg", Reply(text=WORDS, chunk_delay=0.2))
    sdk, other = client(first), client(second)
    queued = sdk.responses.create(model="helper", input="Count slowly", background=True)
    until(lambda: sdk.responses.retrieve(queued.id).output_text)
    cancelled = other.responses.cancel(queued.id)  # asked on the instance not running it
    assert cancelled.status == "cancelled"
    assert WORDS.startswith(cancelled.output_text)
    assert cancelled.output_text != WORDS
    until(lambda: fake.received("bg")[-1].disconnected_at is not None, timeout=5)
    assert other.responses.cancel(queued.id).status == "cancelled"  # again: the same
    with pytest.raises(openai.BadRequestError) as unfinished:  # no answer to continue from
        sdk.responses.create(model="helper", input="And?", previous_response_id=queued.id)
    assert unfinished.value.code == "response_not_completed"
    assert "is cancelled" in unfinished.value.message
    time.sleep(0.5)
    assert sdk.responses.retrieve(queued.id).status == "cancelled"  # it stays cancelled
    # the stream of a cancelled run ends where the run stopped
    events = list(sdk.responses.retrieve(queued.id, stream=True))
    assert events
    assert events[-1].type == "response.output_text.delta"

    fake.script("bg", Reply(text="Done."))
    done = finished(sdk, sdk.responses.create(model="gpt", input="Hi", background=True).id)
    assert sdk.responses.cancel(done.id).status == "completed"  # a finished run stays so


def test_cancelling_what_cannot_be_cancelled(first: RunningServer, fake: FakeUpstream) -> None:
    fake.script("bg", Reply(text="Hi."), Reply(text="Hi."))
    sdk = client(first)
    plain = sdk.responses.create(model="gpt", input="Hi")
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.cancel(plain.id)
    assert refused.value.code == "not_background"
    with pytest.raises(openai.BadRequestError):
        list(sdk.responses.retrieve(plain.id, stream=True))
    with pytest.raises(openai.NotFoundError):
        sdk.responses.cancel("resp_nothing")
    background = sdk.responses.create(model="gpt", input="Hi", background=True)
    stranger = client(first, str(issue(first, name="stranger")["secret"]))
    with pytest.raises(openai.NotFoundError):  # another key's response: as if none
        stranger.responses.cancel(background.id)
    with pytest.raises(openai.NotFoundError):
        list(stranger.responses.retrieve(background.id, stream=True))
    with pytest.raises(openai.BadRequestError) as unstored:
        sdk.responses.create(model="gpt", input="Hi", background=True, store=False)
    assert unstored.value.param == "background"
    bad = httpx.get(
        f"{first.api}/responses/{background.id}",
        params={"stream": "true", "starting_after": "three"},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "starting_after"


def test_a_key_may_have_so_many_background_runs_at_once(
    first: RunningServer, second: RunningServer, fake: FakeUpstream
) -> None:
    fake.script("bg", *[Reply(text=WORDS, chunk_delay=0.2) for _ in range(2)], Reply(text="Ok."))
    key = str(issue(first, name="busy")["secret"])
    sdk, other = client(first, key), client(second, key)
    one = sdk.responses.create(model="gpt", input="Count", background=True)
    two = sdk.responses.create(model="gpt", input="Count", background=True)
    with pytest.raises(openai.RateLimitError) as refused:  # counted on any instance
        other.responses.create(model="gpt", input="Count", background=True)
    assert "2 background responses" in refused.value.message
    assert client(first).responses.create(model="gpt", input="Hi", background=True)  # per key
    sdk.responses.cancel(one.id)
    third = other.responses.create(model="gpt", input="Count", background=True)
    assert third.status == "queued"
    sdk.responses.cancel(two.id)  # nothing left running for the next test's upstream
    assert finished(sdk, third.id).status == "completed"


def test_a_plain_run_whose_instance_is_killed_starts_again_on_another(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.reset()
    site = make_site(tmp_path, upstream, "bk", {})
    upstream.script("bk", Reply(text=WORDS, chunk_delay=1.0), Reply(text="Counted to forty."))
    doomed, survivor = serve(site, "doomed.log"), serve(site, "survivor.log")
    try:
        queued = client(doomed).responses.create(model="gpt", input="Count", background=True)
        until(lambda: client(survivor).responses.retrieve(queued.id).output_text)
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait(10)
        # its stream, followed from the instance still up, goes on there to its end
        events = list(client(survivor).responses.retrieve(queued.id, stream=True))
        assert events[-1].type == "response.completed"
        numbers = [e.sequence_number for e in events]
        assert numbers == list(range(len(numbers)))
        ended = client(survivor).responses.retrieve(queued.id)
        assert ended.status == "completed"
        assert len(upstream.received("bk")) == 2  # the model call cut short is asked again
        # what followers saw of the call cut short stays, closed as incomplete
        cut, answer = ended.output
        assert isinstance(cut, ResponseOutputMessage)
        assert isinstance(answer, ResponseOutputMessage)
        assert (cut.status, answer.status) == ("incomplete", "completed")
        assert WORDS.startswith(cut.content[0].text)  # type: ignore[union-attr]
        assert answer.content[0].text == "Counted to forty."  # type: ignore[union-attr]
        created = events[0]
        assert isinstance(created, ResponseCreatedEvent)
        assert ended.model_extra is not None
        assert created.response.model_extra is not None  # the same session, named the same
        assert ended.model_extra["session_id"] == created.response.model_extra["session_id"]
    finally:
        stop_server(doomed)
        stop_server(survivor)


def test_a_run_that_cannot_go_on_after_a_crash_ends_as_failed(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    """Its key was revoked meanwhile: the instance taking it up does not run it on."""
    upstream.reset()
    site = make_site(tmp_path, upstream, "bf", {})
    upstream.script("bf", Reply(text=WORDS, chunk_delay=1.0))
    doomed, survivor = serve(site, "doomed.log"), serve(site, "survivor.log")
    try:
        key = issue(doomed, name="short-lived")
        sdk = client(doomed, str(key["secret"]))
        queued = sdk.responses.create(model="gpt", input="Count", background=True)
        until(lambda: sdk.responses.retrieve(queued.id).output_text)
        admin = {"Authorization": f"Bearer {ADMIN}"}
        httpx.delete(f"{survivor.base_url}/admin/keys/{key['id']}", headers=admin)
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait(10)

        def ended() -> dict[str, Any] | None:  # its key may no longer read it: the store
            with sqlite3.connect(site / "headend.db") as db:
                row = db.execute("SELECT body FROM responses WHERE id = ?", (queued.id,)).fetchone()
            body: dict[str, Any] = json.loads(row[0])
            return body if body["status"] == "failed" else None

        failed = until(ended, timeout=40)
        assert "revoked" in failed["error"]["message"]
        assert WORDS.startswith(failed["output"][0]["content"][0]["text"])  # what it said stays
        assert len(upstream.received("bf")) == 1
    finally:
        stop_server(doomed)
        stop_server(survivor)


def test_a_run_waits_for_its_slot_queued_and_its_request_does_not(
    first: RunningServer, fake: FakeUpstream
) -> None:
    """The agent runs one at a time: the second run is accepted at once and shows
    ``queued`` until the first has ended."""
    fake.script("bg", Reply(text=WORDS, chunk_delay=0.05), Reply(text="Second."))
    sdk = client(first)
    started = time.monotonic()
    one = sdk.responses.create(model="solo", input="First", background=True)
    two = sdk.responses.create(model="solo", input="Second", background=True)
    assert time.monotonic() - started < 1.5  # neither waits for the other's slot
    until(lambda: sdk.responses.retrieve(one.id).output_text)
    assert sdk.responses.retrieve(two.id).status == "queued"
    metrics = httpx.get(f"{first.base_url}/metrics", headers={"Authorization": f"Bearer {ADMIN}"})
    assert 'headend_background_runs{status="queued"} 1.0' in metrics.text
    assert 'headend_background_runs{status="in_progress"} 1.0' in metrics.text
    events = list(sdk.responses.retrieve(two.id, stream=True))
    assert [e.type for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[0].response.status == "queued"  # type: ignore[union-attr]
    assert finished(sdk, one.id).output_text == WORDS
    assert finished(sdk, two.id).output_text == "Second."


def test_the_node_sdk_follows_resumes_and_cancels(first: RunningServer, fake: FakeUpstream) -> None:
    fake.script("bg", Reply(text=WORDS, chunk_delay=0.03), Reply(text=WORDS, chunk_delay=0.3))
    done = subprocess.run(
        ["node", str(CLIENTS / "node_background.mjs"), first.api, ADMIN, "helper"],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["text"] == WORDS
    assert out["numbers"] == list(range(len(out["numbers"])))
    assert out["last"] == "response.completed"
    assert out["cancelled"] == "cancelled"


def test_operators_see_every_keys_runs_and_a_runs_steps(
    first: RunningServer, fake: FakeUpstream
) -> None:
    call = {"id": "c1", "name": "calculator", "arguments": '{"expression": "6*7"}'}
    fake.script("bg", Reply(text="", tool_calls=[call]), Reply(text="It is 42."))
    key = issue(first, name="runner")
    mine = client(first, str(key["secret"]))
    queued = mine.responses.create(model="maths", input="6 times 7?", background=True)
    finished(mine, queued.id)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    listed = httpx.get(f"{first.base_url}/admin/background?status=completed", headers=admin)
    assert listed.status_code == 200
    runs = {run["id"]: run for run in listed.json()["data"]}
    assert runs[queued.id]["owner"] == key["id"]  # another key's run, seen by the operator
    assert runs[queued.id]["taken_up"] == 0
    one = httpx.get(f"{first.base_url}/admin/background/{queued.id}", headers=admin).json()
    assert one["status"] == "completed"
    reply, result = one["steps"]
    assert reply["kind"] == "reply"
    assert reply["tool_calls"] == [
        {"id": "c1", "name": "calculator", "arguments": '{"expression": "6*7"}'}
    ]
    assert (result["kind"], result["call_id"], result["result"]) == ("tool", "c1", "42")
    missing = httpx.get(f"{first.base_url}/admin/background/resp_nope", headers=admin)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "run_not_found"
    wrong = httpx.get(f"{first.base_url}/admin/background?status=done", headers=admin)
    assert wrong.status_code == 400
    assert wrong.json()["error"]["param"] == "status"
    not_admin = {"Authorization": f"Bearer {key['secret']}"}
    assert httpx.get(f"{first.base_url}/admin/background", headers=not_admin).status_code == 403
