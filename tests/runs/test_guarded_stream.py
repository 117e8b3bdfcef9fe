"""A run's stream through its guard: every text a chunk carries is held and screened, the
content, a vendor's field beside it and a client tool call's arguments alike; placeholders
come back in each; a block ends the stream with the refusal and leaves the upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from headend.guardrails.checks import Finding
from headend.guardrails.guard import Guard
from headend.guardrails.rules import GUARDRAILS
from headend.runs.guarding import GuardedStream

EMAIL = "jane.doe@example.com"


class Watch:
    def __init__(self) -> None:
        self.blocks: list[Finding] = []

    def checked(self, check: str, action: str, outcome: str, seconds: float) -> None:
        pass

    async def blocked(self, finding: Finding) -> None:
        self.blocks.append(finding)


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [choice],
    }


def through(guard: Guard, chunks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    closed = []

    async def source() -> AsyncGenerator[list[dict[str, Any]], None]:
        try:
            for c in chunks:
                yield [c]
        finally:
            closed.append(True)

    async def read() -> list[dict[str, Any]]:
        stream = GuardedStream(guard, "m")
        return [c for batch in [b async for b in stream.batches(source())] for c in batch]

    out = asyncio.run(read())
    return out, bool(closed)


def joined(chunks: list[dict[str, Any]], key: str) -> str:
    return "".join(c["choices"][0]["delta"].get(key) or "" for c in chunks if c["choices"])


def arguments(chunks: list[dict[str, Any]]) -> str:
    return "".join(
        (call.get("function") or {}).get("arguments") or ""
        for c in chunks
        for call in c["choices"][0]["delta"].get("tool_calls") or ()
    )


def guard(*rules: dict[str, Any]) -> Guard:
    return Guard(GUARDRAILS.validate_python(list(rules)), Watch())


def test_a_vendors_text_beside_the_content_is_held_and_screened_too() -> None:
    g = guard({"check": "pii", "apply_to": ["output"], "action": "mask"})
    out, _ = through(
        g,
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hi", "reasoning_content": "the user bob@exa"}),
            chunk({"content": " there", "reasoning_content": "mple.org asked"}),
            chunk({}, "stop"),
        ],
    )
    assert joined(out, "content") == "Hi there"
    assert joined(out, "reasoning_content") == "the user <EMAIL_1> asked"
    assert out[-1]["choices"][0]["finish_reason"] == "stop"


def test_a_client_tool_calls_arguments_get_the_users_values_back() -> None:
    g = guard({"check": "pii", "action": "mask"})
    asyncio.run(g.screen_input([{"role": "user", "content": f"mail {EMAIL}"}]))
    call = {
        "index": 0,
        "id": "c1",
        "type": "function",
        "function": {"name": "mail", "arguments": ""},
    }
    parts = ['{"to": "<EM', 'AIL_1>"}']
    out, _ = through(
        g,
        [
            chunk({"role": "assistant", "tool_calls": [call]}),
            *(chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in parts),
            chunk({}, "tool_calls"),
        ],
    )
    assert arguments(out) == f'{{"to": "{EMAIL}"}}'


def test_a_block_ends_the_stream_with_the_refusal_and_leaves_the_upstream() -> None:
    g = guard({"check": "regex", "patterns": ["nightjar"], "apply_to": ["output"]})
    out, closed = through(
        g,
        [
            chunk({"role": "assistant", "content": "About night"}),
            chunk({"content": "jar: it is"}),
            chunk({"content": " secret."}),
            chunk({}, "stop"),
        ],
    )
    assert "nightjar" not in joined(out, "content")
    assert joined(out, "refusal").startswith("The answer was withheld")
    assert out[-1]["choices"][0]["finish_reason"] == "content_filter"
    assert closed
    assert [f.check for f in g.watcher.blocks] == ["regex"]  # type: ignore[attr-defined]
