"""Many users of the embedded model at once: their streams are decoded together, so a
second user's first token does not wait for the first user's answer, and batching changes
answers only by rounding."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer
from tests.rounding import assert_same_but_rounding

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


def chosen(answer: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = answer["choices"][0]["logprobs"]["content"]
    return found


async def test_batching_and_the_prompt_cache_change_answers_only_by_rounding(
    server: RunningServer,
) -> None:
    question = {
        **ask("Name three colours.", 40),
        "stream": False,
        "logprobs": True,
        "top_logprobs": 2,
    }
    others = [ask(f"Count from {n} upwards.", 60) for n in (1, 10, 100)]
    url = server.api + "/chat/completions"
    async with httpx.AsyncClient(timeout=120) as http:
        alone = (await http.post(url, json=question)).json()
        *_, together = await asyncio.gather(
            *(stream_times(http, server, body) for body in others), http.post(url, json=question)
        )
    assert isinstance(together, httpx.Response)
    again = together.json()
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] > 0
    assert_same_but_rounding(chosen(alone), chosen(again))
