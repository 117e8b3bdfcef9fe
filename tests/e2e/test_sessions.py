"""Sessions that last: session_id continuity, atomic turns, restarts, kill -9, concurrency,
and the native sessions API, on the SQLite store."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionUserMessageParam

from tests.conftest import RunningServer, start_server, stop_server
from tests.e2e.test_agent_tools import call
from tests.upstream import FakeUpstream, Reply, Status

pytestmark = pytest.mark.e2e

CONFIG = """
providers:
  up: {{type: openai, base_url: "{url}/v1", retry: {{attempts: 1}}}}
  small: {{type: openai, base_url: "{url}/v1", retry: {{attempts: 1}}, context_window: 400}}
models:
  gpt: up/gpt
sessions: {{busy_wait: 0.5}}
store: {store}
"""


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(
    request: pytest.FixtureRequest, upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    store = "sqlite:///state/headend.db"
    if request.param == "postgres":
        store = request.getfixturevalue("postgres_url")
    site = tmp_path_factory.mktemp(f"sessions-{request.param}")
    (site / "agents").mkdir()
    (site / "agents" / "chat.md").write_text("---\nmodel: up/m\n---\nBe kind.\n")
    (site / "agents" / "worker.md").write_text("---\nmodel: up/w\ntools: [calculator]\n---\n")
    (site / "agents" / "brief.md").write_text("---\nmodel: small/b\nmax_tokens: 50\n---\nBrief.\n")
    (site / "headend.yaml").write_text(CONFIG.format(url=upstream.url("s"), store=store))
    return site


def boot(site: Path) -> RunningServer:
    return start_server(
        site / "agents", site / "server.log", "--config", str(site / "headend.yaml")
    )


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[RunningServer]:
    running = boot(site)
    yield running
    stop_server(running)


@pytest.fixture
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api, api_key="unused", max_retries=0, timeout=30)


def user(text: str) -> ChatCompletionUserMessageParam:
    return {"role": "user", "content": text}


def sent_messages(fake: FakeUpstream, index: int = -1) -> list[dict[str, Any]]:
    messages = fake.received("s")[index].body["messages"]
    assert isinstance(messages, list)
    return messages


def start(client: openai.OpenAI, fake: FakeUpstream) -> str:
    fake.script("s", Reply(text="Hello Ada."))
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=[user("I am Ada")]
    )
    session_id = raw.parse().model_extra["session_id"]  # type: ignore[index]
    assert raw.headers["x-session-id"] == session_id
    assert session_id.startswith("sess_")
    assert len(session_id) >= 32
    return str(session_id)


def test_a_session_continues_with_only_the_new_message(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    session_id = start(client, fake)
    fake.script("s", Reply(text="You are Ada."))
    reply = client.chat.completions.create(
        model="chat", messages=[user("Who am I?")], extra_body={"session_id": session_id}
    )
    assert reply.choices[0].message.content == "You are Ada."
    assert sent_messages(fake) == [
        {"role": "system", "content": "Be kind."},
        user("I am Ada"),
        {"role": "assistant", "content": "Hello Ada."},
        user("Who am I?"),
    ]


def test_resending_the_whole_history_does_not_duplicate_it(
    client: openai.OpenAI, fake: FakeUpstream, server: RunningServer
) -> None:
    session_id = start(client, fake)
    whole: list[ChatCompletionMessageParam] = [
        user("I am Ada"),
        {"role": "assistant", "content": "Hello Ada."},
        user("Again?"),
    ]
    fake.script("s", Reply(text="Yes."))
    client.chat.completions.create(
        model="chat",
        messages=whole,
        extra_headers={"X-Session-Id": session_id},
    )
    assert sent_messages(fake)[1:] == whole
    stored = httpx.get(f"{server.api}/sessions/{session_id}").json()
    assert [m["content"] for m in stored["messages"]] == [
        "I am Ada",
        "Hello Ada.",
        "Again?",
        "Yes.",
    ]
    assert stored["turns"] == 2


def test_an_unknown_session_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model="chat", messages=[user("hi")], extra_body={"session_id": "sess_nope"}
        )
    assert caught.value.code == "session_not_found"


def test_streaming_returns_the_id_first_and_stores_the_turn(
    server: RunningServer, client: openai.OpenAI, fake: FakeUpstream
) -> None:
    fake.script("s", Reply(text="Streamed hello."))
    with httpx.stream(
        "POST",
        server.api + "/chat/completions",
        json={"model": "chat", "messages": [user("hi")], "stream": True},
    ) as response:
        session_id = response.headers["x-session-id"]
        lines = [line for line in response.iter_lines() if line.startswith("data: {")]
    assert json.loads(lines[0][6:])["session_id"] == session_id
    fake.script("s", Reply(text="ok"))
    client.chat.completions.create(
        model="chat", messages=[user("next")], extra_body={"session_id": session_id}
    )
    assert sent_messages(fake)[-2] == {"role": "assistant", "content": "Streamed hello."}


def test_a_streamed_agent_run_with_tools_stores_its_answer(
    server: RunningServer, client: openai.OpenAI, fake: FakeUpstream
) -> None:
    fake.script("s", Reply(text="Tooled hello."))
    with httpx.stream(
        "POST",
        server.api + "/chat/completions",
        json={"model": "worker", "messages": [user("hi")], "stream": True},
    ) as response:
        session_id = response.headers["x-session-id"]
        lines = list(response.iter_lines())  # to the end: a cut turn writes nothing
    assert any("Tooled" in line for line in lines)
    fake.script("s", Reply(text="ok"))
    client.chat.completions.create(
        model="worker", messages=[user("next")], extra_body={"session_id": session_id}
    )
    assert sent_messages(fake)[-2] == {"role": "assistant", "content": "Tooled hello."}


def test_a_failed_or_cut_turn_writes_nothing(
    server: RunningServer, client: openai.OpenAI, fake: FakeUpstream
) -> None:
    session_id = start(client, fake)
    fake.script("s", Status(500))
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(
            model="chat", messages=[user("lost")], extra_body={"session_id": session_id}
        )
    fake.script("s", Reply(text="a b c d e f", cut_after=3))
    response = httpx.post(
        server.api + "/chat/completions",
        json={"model": "chat", "messages": [user("cut")], "stream": True, "session_id": session_id},
    )
    assert '"error"' in response.text
    stored = httpx.get(f"{server.api}/sessions/{session_id}").json()
    assert [m["content"] for m in stored["messages"]] == ["I am Ada", "Hello Ada."]


def test_tool_calls_and_results_are_part_of_the_turn(
    server: RunningServer, client: openai.OpenAI, fake: FakeUpstream
) -> None:
    fake.script(
        "s",
        Reply(text="", tool_calls=[call("calculator", {"expression": "6*7"}, "k")]),
        Reply(text="42."),
    )
    reply = client.chat.completions.create(model="worker", messages=[user("6*7?")])
    session_id = reply.model_extra["session_id"]  # type: ignore[index]
    stored = httpx.get(f"{server.api}/sessions/{session_id}").json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant", "tool", "assistant"]
    assert stored[2] == {"role": "tool", "tool_call_id": "k", "content": "42"}


def test_plain_model_routes_stay_stateless(client: openai.OpenAI, fake: FakeUpstream) -> None:
    reply = client.chat.completions.create(model="gpt", messages=[user("hi")])
    assert "session_id" not in (reply.model_extra or {})


async def test_concurrent_turns_wait_then_see_each_other(
    server: RunningServer, client: openai.OpenAI, fake: FakeUpstream
) -> None:
    session_id = start(client, fake)
    fake.script("s", Reply(text="first", first_delay=0.3), Reply(text="second"))
    async with httpx.AsyncClient(timeout=30) as http:

        async def turn(text: str) -> httpx.Response:
            return await http.post(
                server.api + "/chat/completions",
                json={"model": "chat", "messages": [user(text)], "session_id": session_id},
            )

        one = asyncio.ensure_future(turn("one"))
        await asyncio.sleep(0.1)
        two = await turn("two")
        assert (await one).status_code == 200
    assert two.status_code == 200
    later = sent_messages(fake)
    assert [m["content"] for m in later[1:]] == ["I am Ada", "Hello Ada.", "one", "first", "two"]


async def test_a_turn_that_waits_too_long_is_409(
    server: RunningServer, client: openai.OpenAI, fake: FakeUpstream
) -> None:
    session_id = start(client, fake)
    fake.script("s", Reply(text="slow", first_delay=1.5))
    async with httpx.AsyncClient(timeout=30) as http:
        body = {"model": "chat", "messages": [user("x")], "session_id": session_id}
        first = asyncio.ensure_future(http.post(server.api + "/chat/completions", json=body))
        await asyncio.sleep(0.2)
        second = await http.post(server.api + "/chat/completions", json=body)
        assert (await first).status_code == 200
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "session_busy"


def test_the_sessions_api(server: RunningServer, fake: FakeUpstream) -> None:
    api = server.api + "/sessions"
    created = httpx.post(api, json={"agent": "chat", "metadata": {"topic": "tea"}}).json()
    assert created["object"] == "session"
    assert created["turns"] == 0
    assert created["metadata"] == {"topic": "tea"}
    fake.script("s", Reply(text="Green tea."), Reply(text="Black tea."))
    answer = httpx.post(f"{api}/{created['id']}/messages", json={"content": "Which tea?"}).json()
    assert answer["choices"][0]["message"]["content"] == "Green tea."
    streamed = httpx.post(
        f"{api}/{created['id']}/messages", json={"content": "Another?", "stream": True}
    )
    assert streamed.text.rstrip().endswith("data: [DONE]")
    session = httpx.get(f"{api}/{created['id']}").json()
    assert [m["content"] for m in session["messages"]] == [
        "Which tea?",
        "Green tea.",
        "Another?",
        "Black tea.",
    ]
    listed = httpx.get(api, params={"limit": 1}).json()
    assert listed["data"][0]["id"] == created["id"]  # newest first
    assert listed["has_more"] is True
    rest = httpx.get(api, params={"limit": 100, "before": created["id"]}).json()
    assert created["id"] not in [s["id"] for s in rest["data"]]
    assert httpx.get(api, params={"limit": 0}).status_code == 400
    assert httpx.post(api, json={"agent": "nobody"}).status_code == 404
    assert httpx.post(api, json={"agent": 5}).status_code == 400
    deleted = httpx.delete(f"{api}/{created['id']}").json()
    assert deleted == {"id": created["id"], "object": "session.deleted", "deleted": True}
    assert httpx.get(f"{api}/{created['id']}").status_code == 404


def test_sessions_survive_a_restart_and_a_kill_mid_turn(
    site: Path, server: RunningServer, fake: FakeUpstream
) -> None:
    first = boot(site)
    try:
        client = openai.OpenAI(base_url=first.api, api_key="unused", max_retries=0)
        session_id = start(client, fake)
        fake.script("s", Reply(text="word " * 200, chunk_delay=0.02))
        with httpx.stream(
            "POST",
            first.api + "/chat/completions",
            json={
                "model": "chat",
                "messages": [user("long")],
                "stream": True,
                "session_id": session_id,
            },
        ) as response:
            for number, _line in enumerate(response.iter_lines()):
                if number == 6:
                    first.process.send_signal(signal.SIGKILL)
                    break
        first.process.wait(timeout=10)
    finally:
        if first.process.poll() is None:
            stop_server(first)
    if (site / "state" / "headend.db").exists():
        with sqlite3.connect(site / "state" / "headend.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    second = boot(site)
    try:
        stored = httpx.get(f"{second.api}/sessions/{session_id}").json()["messages"]
        assert [m["content"] for m in stored] == ["I am Ada", "Hello Ada."]
        fake.script("s", Reply(text="Still Ada."))
        client = openai.OpenAI(base_url=second.api, api_key="unused", max_retries=0)
        # The killed instance's lease on the session runs out within LEASE (10 s).
        deadline = time.monotonic() + 15
        while True:
            try:
                reply = client.chat.completions.create(
                    model="chat", messages=[user("Me?")], extra_body={"session_id": session_id}
                )
                break
            except openai.ConflictError:
                assert time.monotonic() < deadline
                time.sleep(0.5)
        assert reply.choices[0].message.content == "Still Ada."
        assert sent_messages(fake)[1:3] == [
            user("I am Ada"),
            {"role": "assistant", "content": "Hello Ada."},
        ]
    finally:
        stop_server(second)


def test_long_history_is_trimmed_to_the_context_window(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    session_id = None
    for n in range(8):
        fake.script("s", Reply(text=f"answer {n} " + "y " * 60))
        extra: dict[str, object] = {"session_id": session_id} if session_id else {}
        reply = client.chat.completions.create(
            model="brief", messages=[user(f"question {n} " + "x " * 60)], extra_body=extra
        )
        session_id = reply.model_extra["session_id"]  # type: ignore[index]
    sent = sent_messages(fake)
    assert sent[0] == {"role": "system", "content": "Brief."}
    assert sent[-1]["content"].startswith("question 7")
    assert len(sent) < 2 + 2 * 7  # older turns were dropped...
    assert sent[1]["role"] == "user"  # ...whole, oldest first
    kept = [m["content"].split()[1] for m in sent[1:]]
    assert kept == sorted(kept)
    assert kept[-1] == "7"


async def test_two_instances_sharing_the_store_do_not_interleave_turns(
    site: Path, server: RunningServer, client: openai.OpenAI, fake: FakeUpstream
) -> None:
    other = boot(site)
    try:
        session_id = start(client, fake)
        fake.script("s", Reply(text="first", first_delay=0.4), Reply(text="second"))
        async with httpx.AsyncClient(timeout=30) as http:

            async def turn(api: str, text: str) -> httpx.Response:
                return await http.post(
                    api + "/chat/completions",
                    json={"model": "chat", "messages": [user(text)], "session_id": session_id},
                )

            one = asyncio.ensure_future(turn(server.api, "one"))
            await asyncio.sleep(0.15)
            two = await turn(other.api, "two")
            assert (await one).status_code == 200
        assert two.status_code == 200
        assert [m["content"] for m in sent_messages(fake)[1:]] == [
            "I am Ada",
            "Hello Ada.",
            "one",
            "first",
            "two",
        ]
    finally:
        stop_server(other)
