"""headend's agents over A2A, driven by the ``a2a-sdk`` 1.x client: the agent's card, a task
sent and waited for, streamed, read and cancelled, its ``contextId`` the conversation that
goes on; the same over A2A 0.3's method names; the key checked and its agents only."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types.a2a_pb2 import (
    AgentCard,
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    TaskState,
)
from a2a.utils.errors import TaskNotCancelableError, TaskNotFoundError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, issue, make_site, serve, site_fixture
from tests.e2e.waiting import until
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

HELPER = "---\nmodel: up/helper\ndescription: Answers questions about orders.\n---\nYou help.\n"
HIDDEN = "---\nmodel: up/hidden\n---\nNot for everyone.\n"
CAREFUL = "---\nmodel: up/careful\ntools: [calculator]\nrequire_approval: always\n---\nYou ask.\n"


served = site_fixture("aa", {"helper": HELPER, "hidden": HIDDEN, "careful": CAREFUL})


@pytest.fixture(scope="module")
def key(served: RunningServer) -> str:
    return str(issue(served, name="a2a", scopes=["chat"], agents=["helper", "careful"])["secret"])


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def asking(text: str, context: str = "", wait: bool = True) -> SendMessageRequest:
    return SendMessageRequest(
        message=Message(
            role=Role.ROLE_USER,
            message_id=str(uuid.uuid4()),
            context_id=context,
            parts=[Part(text=text)],
        ),
        configuration=SendMessageConfiguration(
            accepted_output_modes=["text/plain"], return_immediately=not wait
        ),
    )


class Agent:
    """The a2a-sdk client for one of headend's agents, its card resolved from its URL."""

    def __init__(self, http: httpx.AsyncClient, card: AgentCard, streaming: bool) -> None:
        self.card = card
        self.client = ClientFactory(ClientConfig(streaming=streaming, httpx_client=http)).create(
            card
        )

    async def events(self, request: SendMessageRequest) -> list[Any]:
        return [event async for event in self.client.send_message(request)]

    async def task(self, request: SendMessageRequest) -> Any:
        (event,) = await self.events(request)
        assert event.WhichOneof("payload") == "task"
        return event.task


async def card_of(
    http: httpx.AsyncClient, served: RunningServer, agent: str = "helper"
) -> AgentCard:
    return await A2ACardResolver(http, f"{served.base_url}/a2a/{agent}").get_agent_card()


def with_key(key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_the_card_names_the_agent_and_how_to_reach_it(served: RunningServer, key: str) -> None:
    async def go() -> AgentCard:
        async with with_key(key) as http:
            return await card_of(http, served)

    card = run(go())
    assert card.name == "helper"
    assert card.description == "Answers questions about orders."
    assert card.capabilities.streaming is True
    versions = {i.protocol_version: i.url for i in card.supported_interfaces}
    assert versions == {
        "1.0": f"{served.base_url}/a2a/helper",
        "0.3": f"{served.base_url}/a2a/helper",
    }
    assert "bearer" in card.security_schemes
    listed = httpx.get(served.base_url + "/a2a", headers={"Authorization": f"Bearer {key}"}).json()
    assert [c["name"] for c in listed["data"]] == ["careful", "helper"]  # the key's agents only


def test_a_task_is_answered_and_its_context_goes_on(
    served: RunningServer, key: str, fake: FakeUpstream
) -> None:
    fake.script("aa", Reply(text="Order 7 ships today."), Reply(text="You asked about order 7."))

    async def go() -> tuple[Any, Any, Any]:
        async with with_key(key) as http:
            agent = Agent(http, await card_of(http, served), streaming=False)
            first = await agent.task(asking("Where is order 7?"))
            second = await agent.task(asking("What did I ask?", context=first.context_id))
            read = await agent.client.get_task(GetTaskRequest(id=first.id, history_length=10))
            return first, second, read

    first, second, read = run(go())
    assert first.status.state == TaskState.TASK_STATE_COMPLETED
    assert first.artifacts[0].parts[0].text == "Order 7 ships today."
    assert first.status.message.parts[0].text == "Order 7 ships today."
    assert first.context_id.startswith("sess_")
    assert second.context_id == first.context_id
    sent = fake.received("aa")[-1].body["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == [
        "Where is order 7?",
        "What did I ask?",
    ]
    assert read.status.state == TaskState.TASK_STATE_COMPLETED
    assert [m.parts[0].text for m in read.history] == ["Where is order 7?", "Order 7 ships today."]
    # A task is a background response of the agent: the Responses API sees the same one.
    response = httpx.get(
        f"{served.api}/responses/{first.id}", headers={"Authorization": f"Bearer {key}"}
    ).json()
    assert (response["background"], response["status"], response["model"]) == (
        True,
        "completed",
        "helper",
    )


def test_a_streamed_task_sends_its_answer_as_it_is_written(
    served: RunningServer, key: str, fake: FakeUpstream
) -> None:
    fake.script("aa", Reply(text="one two three four five", chunk_delay=0.05))

    async def go() -> list[Any]:
        async with with_key(key) as http:
            agent = Agent(http, await card_of(http, served), streaming=True)
            return await agent.events(asking("Count to five."))

    events = run(go())
    kinds = [event.WhichOneof("payload") for event in events]
    assert kinds[0] == "task"
    assert events[0].task.status.state == TaskState.TASK_STATE_SUBMITTED
    chunks = [e.artifact_update for e in events if e.WhichOneof("payload") == "artifact_update"]
    assert len(chunks) > 1  # as the model wrote it, not at the end
    assert "".join(c.artifact.parts[0].text for c in chunks) == "one two three four five"
    assert [c.append for c in chunks] == [False] + [True] * (len(chunks) - 1)
    states = [
        e.status_update.status.state for e in events if e.WhichOneof("payload") == "status_update"
    ]
    assert states == [TaskState.TASK_STATE_WORKING, TaskState.TASK_STATE_COMPLETED]


def test_a_task_is_cancelled_once_and_unknown_tasks_are_not_found(
    served: RunningServer, key: str, fake: FakeUpstream
) -> None:
    fake.script("aa", Reply(text=" ".join(["word"] * 200), chunk_delay=0.05))

    async def go() -> tuple[Any, Any]:
        async with with_key(key) as http:
            agent = Agent(http, await card_of(http, served), streaming=False)
            started = await agent.task(asking("Talk for a while.", wait=False))
            await asyncio.sleep(0.3)
            cancelled = await agent.client.cancel_task(CancelTaskRequest(id=started.id))
            with pytest.raises(TaskNotCancelableError):
                await agent.client.cancel_task(CancelTaskRequest(id=started.id))
            with pytest.raises(TaskNotFoundError):
                await agent.client.get_task(GetTaskRequest(id="resp_nope"))
            return started, cancelled

    started, cancelled = run(go())
    assert started.status.state in (TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING)
    assert cancelled.status.state == TaskState.TASK_STATE_CANCELED


def test_a2a_0_3_method_names_work_the_same(
    served: RunningServer, key: str, fake: FakeUpstream
) -> None:
    fake.script(
        "aa", Reply(text="Hello over 0.3."), Reply(text="Streamed over 0.3.", chunk_delay=0.02)
    )

    async def go() -> tuple[Any, list[Any]]:
        async with with_key(key) as http:
            card = await card_of(http, served)
            del card.supported_interfaces[0]  # a client that speaks 0.3 only
            assert card.supported_interfaces[0].protocol_version == "0.3"
            task = await Agent(http, card, streaming=False).task(asking("Hi"))
            events = await Agent(http, card, streaming=True).events(asking("Stream it"))
            return task, events

    task, events = run(go())
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert task.artifacts[0].parts[0].text == "Hello over 0.3."
    last = events[-1]
    assert last.WhichOneof("payload") == "status_update"
    assert last.status_update.status.state == TaskState.TASK_STATE_COMPLETED
    texts = [
        e.artifact_update.artifact.parts[0].text
        for e in events
        if e.WhichOneof("payload") == "artifact_update"
    ]
    assert "".join(texts) == "Streamed over 0.3."


def test_the_key_is_checked_and_other_agents_are_unknown(
    served: RunningServer, key: str, fake: FakeUpstream
) -> None:
    rpc = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "resp_x"}}
    no_key = httpx.post(served.base_url + "/a2a/helper", json=rpc)
    assert no_key.status_code == 401
    assert no_key.json()["error"]["code"] == "invalid_api_key"
    headers = {"Authorization": f"Bearer {key}"}
    hidden = httpx.get(served.base_url + "/a2a/hidden/.well-known/agent-card.json", headers=headers)
    assert hidden.status_code == 404
    assert httpx.post(served.base_url + "/a2a/hidden", json=rpc, headers=headers).status_code == 404
    admin = {"Authorization": f"Bearer {ADMIN}"}
    bad = httpx.post(served.base_url + "/a2a/helper", content=b"{", headers=headers).json()
    assert bad["error"]["code"] == -32700
    deep = httpx.post(
        served.base_url + "/a2a/helper", content=b"[" * 70 + b"]" * 70, headers=headers
    ).json()
    assert (deep["error"]["code"], deep["id"]) == (-32700, None)
    assert "deeper than 64" in deep["error"]["message"]
    unknown = httpx.post(
        served.base_url + "/a2a/helper", json={**rpc, "method": "tasks/resubscribe"}, headers=admin
    ).json()
    assert unknown["error"]["code"] == -32601

    # another key's task is not found, as an unknown one
    fake.script("aa", Reply(text="For the admin."))
    send = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "message/send",
        "params": {
            "message": {
                "role": "user",
                "messageId": "m1",
                "parts": [{"kind": "text", "text": "Hi"}],
            }
        },
    }
    theirs = httpx.post(served.base_url + "/a2a/helper", json=send, headers=admin).json()["result"]
    assert (theirs["kind"], theirs["status"]["state"]) == ("task", "completed")
    mine = httpx.post(
        served.base_url + "/a2a/helper",
        json={**rpc, "params": {"id": theirs["id"]}},
        headers=headers,
    ).json()
    assert mine["error"]["code"] == -32001


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
PART = st.fixed_dictionaries({}, optional={"text": JSON_VALUES, "kind": JSON_VALUES})
MESSAGE = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from(["user", "ROLE_USER", "agent"]) | JSON_VALUES,
        "parts": st.lists(PART, max_size=2) | JSON_VALUES,
        "messageId": JSON_VALUES,
        "contextId": JSON_VALUES,
        "taskId": JSON_VALUES,
    },
)
CALLS = st.fixed_dictionaries(
    {
        "method": st.sampled_from(
            [
                "SendMessage",
                "message/send",
                "GetTask",
                "tasks/get",
                "CancelTask",
                "tasks/cancel",
                "ListTasks",
            ]
        )
        | JSON_VALUES,
    },
    optional={
        "jsonrpc": st.just("2.0") | JSON_VALUES,
        "id": st.integers() | st.text(max_size=8) | JSON_VALUES,
        "params": st.fixed_dictionaries(
            {},
            optional={
                "message": MESSAGE | JSON_VALUES,
                "configuration": JSON_VALUES,
                "id": JSON_VALUES,
                "historyLength": JSON_VALUES,
            },
        )
        | JSON_VALUES,
    },
)
KNOWN = {-32700, -32600, -32601, -32602, -32001, -32002, -32000}


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(call=CALLS | JSON_VALUES)
def test_any_call_gets_a_json_rpc_answer_never_a_server_error(
    served: RunningServer, key: str, call: Any
) -> None:
    """Calls driven by the methods' params, good and bad: each is a JSON-RPC answer — a
    result, or an error with one of the codes A2A and JSON-RPC define — never a 500."""
    answer = httpx.post(
        served.base_url + "/a2a/helper",
        content=json.dumps(call),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["jsonrpc"] == "2.0"
    assert ("result" in body) != ("error" in body), body
    if "error" in body:
        assert body["error"]["code"] in KNOWN, body


def test_a_task_that_stops_for_approval_asks_for_input(
    served: RunningServer, key: str, fake: FakeUpstream
) -> None:
    sum_call = {"id": "c1", "name": "calculator", "arguments": json.dumps({"expression": "6*7"})}
    fake.script("aa", Reply(text="", tool_calls=[sum_call]))

    async def go() -> Any:
        async with with_key(key) as http:
            agent = Agent(http, await card_of(http, served, "careful"), streaming=False)
            return await agent.task(asking("What is 6*7?"))

    task = run(go())
    assert task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    said = task.status.message.parts[0].text
    assert "Waiting for your approval before running:\n- calculator" in said
    assert f"POST /v1/sessions/{task.context_id}/approvals/mcpr_" in said
    assert len(fake.received("aa")) == 1  # nothing ran past the request


def test_a_task_survives_a_kill_9_and_ends_after_the_restart(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    """A task is a background response: killed mid-run, taken up when headend starts again
    on the same store, and read as completed over A2A."""
    upstream.reset()
    ledger = tmp_path / "ledger.txt"
    agent = "---\nmodel: up/worker\ntools: [terminal]\n---\nYou work.\n"
    site = make_site(tmp_path, upstream, "ak", {"worker": agent})
    command = {"command": f"echo once >> {ledger}; sleep 60"}
    upstream.script(
        "ak",
        Reply(
            text="", tool_calls=[{"id": "c1", "name": "terminal", "arguments": json.dumps(command)}]
        ),
        Reply(text="Done after the restart."),
    )
    send = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {
            "message": {"role": "ROLE_USER", "messageId": "m1", "parts": [{"text": "Work."}]},
            "configuration": {"returnImmediately": True},
        },
    }
    admin = {"Authorization": f"Bearer {ADMIN}"}
    first = serve(site, "first.log")
    try:
        task = httpx.post(first.base_url + "/a2a/worker", json=send, headers=admin).json()
        task = task["result"]["task"]
        until(lambda: ledger.exists())
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
    finally:
        stop_server(first)
    again = serve(site, "again.log")
    try:
        get = {"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": task["id"]}}

        def ended() -> Any:
            found = httpx.post(again.base_url + "/a2a/worker", json=get, headers=admin).json()
            state = found["result"]["status"]["state"]
            return found["result"] if state == "TASK_STATE_COMPLETED" else None

        done = until(ended, timeout=40)
        assert done["contextId"] == task["contextId"]
        assert done["artifacts"][0]["parts"][0]["text"] == "Done after the restart."
        assert ledger.read_text() == "once\n"  # the command was not run again
    finally:
        stop_server(again)
