"""Many users of the embedded model at once: their streams are decoded together, so a
second user's first token does not wait for the first user's answer, and batching changes
no answer."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.conftest import RunningServer

pytestmark = pytest.mark.e2e


def ask(content: str, max_tokens: int) -> dict[str, object]:
    return {
        "model": "assistant",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
    }


async def stream_times(
    http: httpx.AsyncClient, server: RunningServer, body: dict[str, object]
) -> tuple[float, float, str]:
    """(first token, end) on the monotonic clock, and the answer."""
    first, text = 0.0, []
    async with http.stream("POST", server.api + "/chat/completions", json=body) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            import json

            chunk = json.loads(line[6:])
            piece = chunk["choices"][0]["delta"].get("content") if chunk["choices"] else None
            if piece:
                first = first or time.monotonic()
                text.append(piece)
    return first, time.monotonic(), "".join(text)


async def test_a_second_stream_starts_before_the_first_one_ends(server: RunningServer) -> None:
    async with httpx.AsyncClient(timeout=120) as http:
        long = asyncio.create_task(
            stream_times(http, server, ask("Write a very long story about the sea.", 400))
        )
        await asyncio.sleep(1.0)  # the long answer is well under way
        short = await stream_times(http, server, ask("What is the capital of France?", 8))
        long_first, long_end, long_text = await long
    short_first, _, _ = short
    assert long_first < short_first < long_end, "the second user waited for the first"
    assert long_text


async def test_batching_changes_no_answer(server: RunningServer) -> None:
    question = ask("Name three colours.", 40)
    others = [ask(f"Count from {n} upwards.", 60) for n in (1, 10, 100)]
    async with httpx.AsyncClient(timeout=120) as http:
        _, _, alone = await stream_times(http, server, question)
        together = await asyncio.gather(
            *(stream_times(http, server, body) for body in [*others, question])
        )
    assert together[-1][2] == alone
