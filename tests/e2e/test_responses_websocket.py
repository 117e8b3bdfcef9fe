"""The Responses API over WebSocket (OpenAI's WebSocket mode), driven by the openai SDK's
``responses.connect()`` and by a plain ``websockets`` client for the frames themselves:
one response per ``response.create``, the HTTP stream's events one per text frame, several
responses in turn on one socket, a chain of responses not stored continued from the
socket's memory, the ``generate: false`` warm-up, errors as ``error`` events that leave the
socket usable, and the key checked at the upgrade and again on every response."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, issue, make_site, serve, site_fixture
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

HELPER = "---\nmodel: up/helper\n---\nYou help.\n"
CALC = "---\nmodel: up/calc\ntools: [calculator]\n---\nYou compute.\n"


served = site_fixture("ws", {"helper": HELPER, "calc": CALC}, access_log=True)


DEEP: Any = 0  # nested past the 64 levels any JSON body may have
for _ in range(70):
    DEEP = [DEEP]


def socket_url(server: RunningServer) -> str:
    return server.api.replace("http://", "ws://") + "/responses"


def user(text: str) -> list[Any]:
    return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}]


class Socket:
    """A plain WebSocket client: frames as JSON, a response's events until it ends."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def send(self, event: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(event))

    async def events(self) -> list[dict[str, Any]]:
        """Frames until one ends a response (completed, failed) or is an error."""
        seen = []
        while True:
            event = json.loads(await asyncio.wait_for(self.connection.recv(), 20))
            seen.append(event)
            if event["type"] in ("response.completed", "response.failed", "error"):
                return seen

    async def create(self, **body: Any) -> list[dict[str, Any]]:
        await self.send({"type": "response.create", **body})
        return await self.events()


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def closing_code(connection: Any) -> int:
    """The code the server closes the socket with (after what it had to say)."""
    with pytest.raises(ConnectionClosed) as closed:
        await connection.recv()
    assert closed.value.rcvd is not None
    code: int = closed.value.rcvd.code
    return code


async def opened(server: RunningServer, key: str = ADMIN) -> Any:
    return await connect(socket_url(server), additional_headers={"Authorization": f"Bearer {key}"})


def test_the_openai_sdk_makes_responses_in_turn_on_one_socket(
    served: RunningServer, fake: FakeUpstream
) -> None:
    fake.script(
        "ws",
        Reply(text="Paris is the capital.", chunk_delay=0.02),
        Reply(text="About two million people."),
    )
    client = openai.OpenAI(base_url=served.api, api_key=ADMIN, max_retries=0)
    with client.responses.connect() as connection:
        connection.response.create(model="gpt", input=user("Capital of France?"), store=False)
        first: list[Any] = []
        for event in connection:
            first.append(event)
            if event.type == "response.completed":
                break
        deltas = [e.delta for e in first if e.type == "response.output_text.delta"]
        assert "".join(deltas) == "Paris is the capital."
        assert len(deltas) > 1  # token by token, as the HTTP stream
        numbers = [e.sequence_number for e in first]
        assert numbers == sorted(set(numbers))  # each its own, in order
        done = first[-1].response
        assert done.status == "completed"
        assert done.output_text == "Paris is the capital."

        # Not stored: over HTTP nothing could go on from it; the socket holds it.
        connection.response.create(
            model="gpt",
            input=user("How many live there?"),
            previous_response_id=done.id,
            store=False,
        )
        second: list[Any] = []
        for event in connection:
            second.append(event)
            if event.type == "response.completed":
                break
        assert second[-1].response.output_text == "About two million people."
        assert second[-1].response.previous_response_id == done.id
    sent = fake.received("ws")[-1].body["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("user", "Capital of France?"),
        ("assistant", "Paris is the capital."),
        ("user", "How many live there?"),
    ]
    refused = httpx.post(
        served.api + "/responses",
        headers={"Authorization": f"Bearer {ADMIN}"},
        json={"model": "gpt", "input": "And?", "previous_response_id": done.id},
    )
    assert refused.status_code == 404  # over HTTP it was never kept


def test_an_agents_conversation_goes_on_from_the_socket_without_the_stored_response(
    served: RunningServer, fake: FakeUpstream
) -> None:
    async def go() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with await opened(served) as connection:
            socket = Socket(connection)
            first = await socket.create(model="helper", input=user("My name is Ada."))
            made = first[-1]["response"]
            # the stored response goes; the socket still knows its conversation
            async with httpx.AsyncClient() as http:
                gone = await http.delete(
                    f"{served.api}/responses/{made['id']}",
                    headers={"Authorization": f"Bearer {ADMIN}"},
                )
                assert gone.status_code == 200
            second = await socket.create(
                model="helper", input=user("What is my name?"), previous_response_id=made["id"]
            )
            return first, second

    fake.script("ws", Reply(text="Hello Ada."), Reply(text="Ada."))
    first, second = run(go())
    assert second[-1]["type"] == "response.completed"
    assert second[-1]["response"]["session_id"] == first[-1]["response"]["session_id"]
    sent = fake.received("ws")[-1].body["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == [
        "My name is Ada.",
        "What is my name?",
    ]


def test_a_warm_up_runs_nothing_and_the_next_response_goes_on_from_it(
    served: RunningServer, fake: FakeUpstream
) -> None:
    async def go() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with await opened(served) as connection:
            socket = Socket(connection)
            warm = await socket.create(
                model="gpt",
                store=False,
                generate=False,
                instructions="Be brief.",
                input=user("Context: the repo is headend."),
            )
            going = await socket.create(
                model="gpt",
                store=False,
                instructions="Be brief.",
                input=user("What repo is this?"),
                previous_response_id=warm[-1]["response"]["id"],
            )
            return warm, going

    fake.script("ws", Reply(text="headend."))
    before = len(fake.received("ws"))
    warm, going = run(go())
    assert [e["type"] for e in warm] == [
        "response.created",
        "response.in_progress",
        "response.completed",
    ]
    assert warm[-1]["response"]["output"] == []
    assert warm[-1]["response"]["usage"]["total_tokens"] == 0
    assert going[-1]["response"]["output"][0]["content"][0]["text"] == "headend."
    (sent,) = fake.received("ws")[before:]  # the warm-up called nothing
    assert [(m["role"], m["content"]) for m in sent.body["messages"]] == [
        ("system", "Be brief."),
        ("user", "Context: the repo is headend."),
        ("user", "What repo is this?"),
    ]


def test_errors_are_events_and_the_socket_goes_on(
    served: RunningServer, fake: FakeUpstream
) -> None:
    async def go() -> list[list[dict[str, Any]]]:
        async with await opened(served) as connection:
            socket = Socket(connection)
            seen = [await socket.create(model="nope", input="Hi")]
            await connection.send("{not json")
            seen.append(await socket.events())
            seen.append(await socket.create(model="gpt", input="Hi", background=True))
            seen.append(await socket.create(model="gpt", input=[{"type": "message", "role": "x"}]))
            await socket.send({"type": "response.cancel"})
            seen.append(await socket.events())
            await socket.send({"type": "response.create", "model": "gpt", "input": DEEP})
            seen.append(await socket.events())
            seen.append(await socket.create(model="gpt", input="Hi", stream_id="lane-1"))
            return seen

    fake.script("ws", Reply(text="Still here."))
    unknown, bad_json, background, bad_role, unknown_event, deep, fine = run(go())
    assert (deep[0]["status"], deep[0]["error"]["code"]) == (400, "json_too_deep")
    (event,) = unknown
    assert (event["type"], event["status"], event["error"]["code"]) == (
        "error",
        404,
        "model_not_found",
    )
    assert event["error"]["type"] == "invalid_request_error"
    assert (bad_json[0]["status"], bad_json[0]["error"]["code"]) == (400, "invalid_json")
    assert (background[0]["status"], background[0]["error"]["param"]) == (400, "background")
    assert bad_role[0]["status"] == 400
    assert unknown_event[0]["error"]["code"] == "unknown_event"
    assert fine[-1]["type"] == "response.completed"
    assert {e.get("stream_id") for e in fine} == {"lane-1"}  # each event names its stream


def test_the_upgrade_is_authenticated_and_a_revoked_key_closes_the_socket(
    served: RunningServer, fake: FakeUpstream
) -> None:
    async def refused(key: str | None) -> InvalidStatus:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        with pytest.raises(InvalidStatus) as caught:
            await connect(socket_url(served), additional_headers=headers)
        return caught.value

    no_key = run(refused(None))
    assert no_key.response.status_code == 401
    assert json.loads(no_key.response.body)["error"]["code"] == "invalid_api_key"
    reader = str(issue(served, name="reader", scopes=["models:read"])["secret"])
    no_scope = run(refused(reader))
    assert no_scope.response.status_code == 403
    assert json.loads(no_scope.response.body)["error"]["code"] == "insufficient_scope"

    created = issue(served, name="short-lived", scopes=["chat"])
    key = str(created["secret"])

    async def revoked_mid_socket() -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        async with await opened(served, key) as connection:
            socket = Socket(connection)
            first = await socket.create(model="gpt", input="Hi")
            async with httpx.AsyncClient() as http:
                await http.delete(
                    f"{served.base_url}/admin/keys/{created['id']}",
                    headers={"Authorization": f"Bearer {ADMIN}"},
                )
            await asyncio.sleep(1.1)  # revocation holds within a second everywhere
            second = await socket.create(model="gpt", input="Again")
            return first, second, await closing_code(connection)

    fake.script("ws", Reply(text="Hello."))
    first, second, code = run(revoked_mid_socket())
    assert first[-1]["type"] == "response.completed"
    assert (second[-1]["type"], second[-1]["status"]) == ("error", 401)
    assert code == 1008


def test_a_keys_rate_limit_holds_per_response(served: RunningServer, fake: FakeUpstream) -> None:
    key = str(issue(served, name="slow", scopes=["chat"], rpm=1)["secret"])

    async def go() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with await opened(served, key) as connection:
            socket = Socket(connection)
            return await socket.create(model="gpt", input="One"), await socket.create(
                model="gpt", input="Two"
            )

    fake.script("ws", Reply(text="One."))
    first, second = run(go())
    assert first[-1]["type"] == "response.completed"
    (limited,) = second
    assert (limited["status"], limited["error"]["code"]) == (429, "rate_limit_exceeded")
    assert int(limited["error"]["headers"]["retry-after"]) >= 1


def test_each_response_is_a_request_in_the_access_log(
    served: RunningServer, fake: FakeUpstream
) -> None:
    async def go() -> None:
        async with await opened(served) as connection:
            await Socket(connection).create(model="gpt", input="Logged?")

    fake.script("ws", Reply(text="Yes."))
    run(go())
    deadline = time.monotonic() + 5
    while "WS /v1/responses 200 model=gpt" not in served.log.read_text():
        assert time.monotonic() < deadline, served.log.read_text()[-2000:]
        time.sleep(0.1)
    assert ADMIN not in served.log.read_text()


def test_a_plain_get_is_not_an_upgrade(served: RunningServer) -> None:
    plain = httpx.get(served.api + "/responses", headers={"Authorization": f"Bearer {ADMIN}"})
    assert plain.status_code == 405


def test_a_console_sign_in_does_not_open_a_socket(served: RunningServer) -> None:
    """A browser sends its cookies to a socket any page opens: only a key opens one."""
    key = issue(served, name="console", scopes=["chat", "models:read"])
    signed = httpx.post(
        served.base_url + "/console/api/session",
        json={"key": key["secret"]},
        headers={"Origin": served.base_url},
    )
    assert signed.status_code == 200
    cookie = signed.headers["set-cookie"].split(";", 1)[0]
    assert httpx.get(served.api + "/models", headers={"Cookie": cookie}).status_code == 200

    async def refused() -> InvalidStatus:
        with pytest.raises(InvalidStatus) as caught:
            await connect(
                socket_url(served),
                additional_headers={"Cookie": cookie, "Origin": "https://x.example"},
            )
        return caught.value

    assert run(refused()).response.status_code == 401


def test_a_socket_past_its_life_is_told_and_closed(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = make_site(
        tmp_path_factory.mktemp("ws-life"),
        upstream,
        "wl",
        {},
        "server: {websocket_seconds: 1s}\n",
    )
    server = serve(root)
    try:

        async def go() -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
            async with await opened(server) as connection:
                socket = Socket(connection)
                first = await socket.create(model="gpt", input="Hi")
                await asyncio.sleep(1.2)
                second = await socket.create(model="gpt", input="Again")
                return first, second, await closing_code(connection)

        upstream.script("wl", Reply(text="Hi."))
        first, second, code = run(go())
    finally:
        stop_server(server)
    assert first[-1]["type"] == "response.completed"
    assert second[-1]["error"]["code"] == "websocket_connection_limit_reached"
    assert code == 1000


def test_a_client_that_leaves_mid_response_frees_its_slot(
    served: RunningServer, fake: FakeUpstream
) -> None:
    key = str(issue(served, name="one-at-a-time", scopes=["chat"], max_concurrency=1)["secret"])

    async def leave_early() -> None:
        async with await opened(served, key) as connection:
            await Socket(connection).send(
                {"type": "response.create", "model": "gpt", "input": "Go"}
            )
            while json.loads(await connection.recv())["type"] != "response.output_text.delta":
                pass  # the answer has begun: leave

    fake.script("ws", Reply(text=" ".join(["word"] * 100), chunk_delay=0.1), Reply(text="Next."))
    run(leave_early())
    started = time.monotonic()
    after = httpx.post(
        served.api + "/responses",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "gpt", "input": "Next?"},
        timeout=30,
    )
    assert after.status_code == 200, after.text
    assert time.monotonic() - started < 3  # not behind the 10 s the abandoned answer had left


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
REQUEST_FIELDS = (
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "previous_response_id",
    "store",
    "max_output_tokens",
    "temperature",
    "text",
    "generate",
    "stream_id",
    "background",
)
FRAMES = st.one_of(
    st.text(max_size=30),  # not JSON at all
    JSON_VALUES.map(json.dumps),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["response.create", "response.cancel", "response.processed"]),
            "model": st.sampled_from(["gpt", "helper", "calc", "nope"]) | JSON_VALUES,
        },
        optional={field: JSON_VALUES for field in REQUEST_FIELDS},
    ).map(json.dumps),
)


PROBE = "probe-after-the-fuzz"  # longer than any generated text: not a fuzzed stream_id
ENDED = ("response.completed", "response.failed", "error")


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(frame=FRAMES)
def test_any_frame_gets_an_answer_in_shape_and_the_socket_goes_on(
    served: RunningServer, frame: str
) -> None:
    """Frames driven by the request's fields, of every type: each is answered with an
    ``error`` event in OpenAI's shape (a 4xx), or with a response; never a server error;
    and the socket answers a good request after it."""

    async def go() -> list[dict[str, Any]]:
        async with await opened(served) as connection:
            await connection.send(frame)
            probe = {"type": "response.create", "model": "gpt", "input": "probe"}
            await Socket(connection).send({**probe, "stream_id": PROBE})
            seen: list[dict[str, Any]] = []
            while True:  # until the probe's response ends
                event = json.loads(await asyncio.wait_for(connection.recv(), 20))
                seen.append(event)
                if event.get("stream_id") == PROBE and event["type"] in ENDED:
                    return seen

    seen = run(go())
    assert seen[-1]["type"] == "response.completed", seen[-1]  # the socket still answers
    for event in seen:
        if event["type"] == "error":
            assert 400 <= event["status"] < 500, event
            assert set(event["error"]) >= {"type", "code", "message", "param"}, event
        assert "server_error" not in json.dumps(event), event
