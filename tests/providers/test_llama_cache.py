"""Prompts reuse what the embedded model's cache already holds: the choice of sequence and
prefix, and, on the bundled model, that reuse changes answers only by rounding and gives
way when the cache is full."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from headend.config import Settings
from headend.providers.base import ChatCall
from headend.providers.llama_cache import CacheMap, Placement, common_prefix
from headend.providers.llama_cpp import LlamaCppConfig, LlamaCppProvider
from headend.types import Json
from tests.rounding import assert_same_but_rounding


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0


def test_a_prompt_takes_the_longest_cached_prefix_from_any_sequence() -> None:
    cache = CacheMap(3)
    assert cache.place([1, 2, 3]) == Placement(0, 0, 0)  # nothing cached: the first free
    cache.extend(0, [1, 2, 3, 9])
    # Sequence 0 is busy: the prompt goes elsewhere and copies the prefix from it.
    assert cache.place([1, 2, 3, 4, 5]) == Placement(1, 0, 3)


def test_the_last_prompt_token_is_always_computed() -> None:
    cache = CacheMap(2)
    seq_id = cache.place([1, 2, 3]).seq_id
    cache.keep(seq_id, [1, 2, 3])
    cache.release(seq_id)
    assert cache.place([1, 2, 3]) == Placement(seq_id, seq_id, 2)


def test_a_new_prompt_spares_a_conversation_that_may_continue() -> None:
    cache = CacheMap(2)
    first = cache.place([1, 2, 3])
    cache.keep(first.seq_id, [1, 2, 3, 4, 5])
    cache.release(first.seq_id)
    other = cache.place([1, 9, 9])  # shares one token with sequence 0's conversation
    assert other.seq_id == 1  # the empty sequence, not the conversation
    assert (other.source, other.reused) == (0, 1)
    cache.keep(1, [1, 9, 9])
    cache.release(1)
    # The conversation's next turn finds its own cache, all of it reusable.
    assert cache.place([1, 2, 3, 4, 5, 6]) == Placement(0, 0, 5)


def test_a_model_that_cannot_drop_part_of_a_sequence_reuses_nothing() -> None:
    cache = CacheMap(2, reuse=False)
    seq_id = cache.place([1, 2, 3]).seq_id
    cache.keep(seq_id, [1, 2, 3])
    cache.release(seq_id)
    assert cache.place([1, 2, 3, 4]).reused == 0


def test_evicting_takes_the_least_recently_used_free_sequence_first() -> None:
    cache = CacheMap(3)
    for seq in (0, 1, 2):
        cache.place([seq])
    for seq in (2, 0, 1):
        cache.keep(seq, [seq, seq])
        cache.release(seq)
    assert cache.evictable() == 2
    cache.forget(2)
    assert cache.evictable() == 0


# ---- on the bundled model, in-process

SYSTEM = "You are a patient teacher. " * 8


@pytest.fixture(scope="module")
def provider() -> Iterator[LlamaCppProvider]:
    config = LlamaCppConfig(n_ctx=512, parallel=2, n_threads=2)
    found = LlamaCppProvider("cache-test", config, Settings())
    found._load()
    yield found
    asyncio.run(found.close())


def chat(question: str, max_tokens: int, system: str = SYSTEM) -> Json:
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": question},
        ],
        "max_tokens": max_tokens,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 2,
    }


Tokens = list[dict[str, Any]]


async def answer(provider: LlamaCppProvider, body: Json) -> tuple[Tokens, Json]:
    """The answer's tokens with their log-probabilities, and the usage."""
    return await collect(provider.stream(ChatCall(body=body)))


async def collect(batches: AsyncIterator[list[Json]]) -> tuple[Tokens, Json]:
    tokens: Tokens = []
    usage: Json = {}
    async for batch in batches:
        for chunk in batch:
            if chunk.get("usage"):
                usage = chunk["usage"]
            elif chunk["choices"]:
                tokens += (chunk["choices"][0]["logprobs"] or {}).get("content") or []
    return tokens, usage


def cached(usage: Any) -> int:
    found: int = usage["prompt_tokens_details"]["cached_tokens"]
    return found


def test_a_repeated_prompt_is_read_from_the_cache_with_the_same_answer(
    provider: LlamaCppProvider,
) -> None:
    body = chat("What is a noun?", 24)
    first_tokens, first = asyncio.run(answer(provider, body))
    again_tokens, again = asyncio.run(answer(provider, body))
    assert again["prompt_tokens"] == first["prompt_tokens"]
    assert cached(again) == again["prompt_tokens"] - 1 > cached(first)
    assert_same_but_rounding(first_tokens, again_tokens)


def test_a_prompt_shares_the_cache_of_a_running_sequence(provider: LlamaCppProvider) -> None:
    body = chat("Tell me about verbs.", 48)

    async def both() -> tuple[tuple[Tokens, Json], tuple[Tokens, Json]]:
        running = provider.stream(ChatCall(body=body))
        first = await anext(running)  # its prompt is read: it is decoding now

        async def rest() -> AsyncIterator[list[Json]]:
            yield first
            async for batch in running:
                yield batch

        finishing = asyncio.create_task(collect(rest()))
        second = await answer(provider, body)
        return await finishing, second

    (tokens, _), (copied_tokens, copied) = asyncio.run(both())
    assert cached(copied) == copied["prompt_tokens"] - 1
    assert_same_but_rounding(tokens, copied_tokens)


def test_an_answer_beside_others_is_the_same_as_alone(provider: LlamaCppProvider) -> None:
    question = chat("Name three colours.", 32)

    async def together() -> Tokens:
        other = asyncio.create_task(answer(provider, chat("Count to twenty.", 64)))
        await asyncio.sleep(0.2)
        found, _ = await answer(provider, question)
        await other
        return found

    alone, _ = asyncio.run(answer(provider, question))
    assert_same_but_rounding(alone, asyncio.run(together()))


def test_a_full_cache_drops_finished_sequences_before_cutting_a_running_one(
    provider: LlamaCppProvider,
) -> None:
    long_a = chat("Summarize: " + "the cat sat on the mat. " * 40, 4, system="A.")
    long_b = chat("Summarize: " + "a dog ran in the park. " * 40, 4, system="B.")
    _, a = asyncio.run(answer(provider, long_a))
    assert a["prompt_tokens"] > 256  # two of them do not fit 512 tokens
    _, b = asyncio.run(answer(provider, long_b))
    assert b["completion_tokens"] == 4  # not cut for room: A's finished tokens made way
    _, a_again = asyncio.run(answer(provider, long_a))
    assert cached(a_again) < 16  # A's cache was the one dropped
