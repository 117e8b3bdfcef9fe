"""One agent, one behaviour: the same two-turn conversation — a question the agent answers
with its calculator, then a follow-up in the same conversation — over all seven ways in
(Chat Completions, Completions, Responses over HTTP and over WebSocket, Messages, MCP,
A2A), each with its own real client. What the upstream model received must be the same
on every one, and so must what the client got."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types.a2a_pb2 import Message, Part, Role, SendMessageRequest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import RunningServer
from tests.e2e.sites import ADMIN as KEY
from tests.e2e.sites import site_fixture
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

CLERK = (
    "---\nmodel: up/clerk\ntools: [calculator]\ndescription: Does the shop's sums.\n---\n"
    "You are the shop's clerk. Use the calculator for every sum.\n"
)
FIRST, SECOND = "What do six boxes at 7 cost?", "And twice that?"
ANSWERS = ("Six boxes cost 42.", "Twice that is 84.")


served = site_fixture("7s", {"clerk": CLERK})


def script(fake: FakeUpstream) -> None:
    calls = [{"id": "c1", "name": "calculator", "arguments": json.dumps({"expression": "6*7"})}]
    fake.script(
        "7s",
        Reply(text="", tool_calls=calls),
        Reply(text=ANSWERS[0]),
        Reply(text=ANSWERS[1]),
    )


def chat_completions(served: RunningServer) -> list[str]:
    client = openai.OpenAI(base_url=served.api, api_key=KEY, max_retries=0)
    first = client.chat.completions.create(
        model="clerk", messages=[{"role": "user", "content": FIRST}]
    )
    session = {"session_id": (first.model_extra or {})["session_id"]}
    second = client.chat.completions.create(
        model="clerk", messages=[{"role": "user", "content": SECOND}], extra_body=session
    )
    return [first.choices[0].message.content or "", second.choices[0].message.content or ""]


def completions(served: RunningServer) -> list[str]:
    client = openai.OpenAI(base_url=served.api, api_key=KEY, max_retries=0)
    first = client.completions.create(model="clerk", prompt=FIRST)
    session = {"session_id": (first.model_extra or {})["session_id"]}
    second = client.completions.create(model="clerk", prompt=SECOND, extra_body=session)
    return [first.choices[0].text, second.choices[0].text]


def responses(served: RunningServer) -> list[str]:
    client = openai.OpenAI(base_url=served.api, api_key=KEY, max_retries=0)
    first = client.responses.create(model="clerk", input=FIRST)
    second = client.responses.create(model="clerk", input=SECOND, previous_response_id=first.id)
    return [first.output_text, second.output_text]


def responses_websocket(served: RunningServer) -> list[str]:
    client = openai.OpenAI(base_url=served.api, api_key=KEY, max_retries=0)
    said: list[str] = []
    previous = None
    with client.responses.connect() as connection:
        for text in (FIRST, SECOND):
            extra: dict[str, Any] = {"previous_response_id": previous} if previous else {}
            connection.response.create(model="clerk", input=text, **extra)
            for event in connection:
                if event.type == "response.completed":
                    done: Any = event.response
                    break
            previous = done.id
            said.append(done.output_text)
    return said


def messages(served: RunningServer) -> list[str]:
    client = anthropic.Anthropic(base_url=served.base_url, api_key=KEY, max_retries=0)
    first = client.messages.with_raw_response.create(
        model="clerk", max_tokens=100, messages=[{"role": "user", "content": FIRST}]
    )
    session = {"session_id": first.headers["x-session-id"]}
    second = client.messages.create(
        model="clerk",
        max_tokens=100,
        messages=[{"role": "user", "content": SECOND}],
        extra_body=session,
    )
    texts = [first.parse().content[0], second.content[0]]
    return [block.text for block in texts if block.type == "text"]


def mcp(served: RunningServer) -> list[str]:
    async def go() -> list[str]:
        headers = {"Authorization": f"Bearer {KEY}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            streamable_http_client(served.base_url + "/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            first = await session.call_tool("clerk", {"message": FIRST})
            assert first.structured_content is not None
            goes_on = {"message": SECOND, "session_id": first.structured_content["session_id"]}
            second = await session.call_tool("clerk", goes_on)
            assert second.structured_content is not None
            return [first.structured_content["answer"], second.structured_content["answer"]]

    result: list[str] = asyncio.run(go())
    return result


def a2a(served: RunningServer) -> list[str]:
    async def go() -> list[str]:
        async with httpx.AsyncClient(
            headers={"Authorization": f"Bearer {KEY}"}, timeout=30
        ) as http:
            card = await A2ACardResolver(http, served.base_url + "/a2a/clerk").get_agent_card()
            client = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(card)
            said, context = [], ""
            for text in (FIRST, SECOND):
                message = Message(
                    role=Role.ROLE_USER,
                    message_id=str(uuid.uuid4()),
                    context_id=context,
                    parts=[Part(text=text)],
                )
                async for event in client.send_message(SendMessageRequest(message=message)):
                    task = event.task
                context = task.context_id
                said.append(task.artifacts[0].parts[0].text)
            return said

    result: list[str] = asyncio.run(go())
    return result


SURFACES: dict[str, Callable[[RunningServer], list[str]]] = {
    "chat_completions": chat_completions,
    "completions": completions,
    "responses": responses,
    "responses_websocket": responses_websocket,
    "messages": messages,
    "mcp": mcp,
    "a2a": a2a,
}


def upstream_saw(fake: FakeUpstream) -> list[Any]:
    """What each model call carried that the agent decides: the conversation and the tools."""
    return [
        (
            seen.body["messages"],
            sorted(tool["function"]["name"] for tool in seen.body.get("tools", [])),
        )
        for seen in fake.received("7s")
    ]


def test_the_same_conversation_on_every_protocol(served: RunningServer, fake: FakeUpstream) -> None:
    got: dict[str, list[str]] = {}
    saw: dict[str, list[Any]] = {}
    for name, converse in SURFACES.items():
        fake.reset()
        script(fake)
        got[name] = converse(served)
        saw[name] = upstream_saw(fake)
    for name in SURFACES:
        assert got[name] == list(ANSWERS), name
    reference = saw["chat_completions"]
    assert len(reference) == 3  # the call, the answer after the tool, the follow-up
    first_call, after_tool, follow_up = (messages for messages, _ in reference)
    assert [m["role"] for m in first_call] == ["system", "user"]
    assert [m["role"] for m in after_tool] == ["system", "user", "assistant", "tool"]
    assert after_tool[-1]["content"] == "42"
    assert [m["role"] for m in follow_up] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    for name in SURFACES:
        assert saw[name] == reference, name
