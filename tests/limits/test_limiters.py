"""The one suite both limiters pass: in memory, and shared through a real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from headend.limits import redis as redis_limiter
from headend.limits.base import Limiter, QueueFull, Queueing, QueueTimeout, Rates
from headend.limits.memory import MemoryLimiter
from headend.limits.redis import RedisLimiter

QUEUE = Queueing(max_waiting=2, timeout=2.0)


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[Limiter]:
    found: Limiter
    if request.param == "memory":
        found = MemoryLimiter()
    else:
        found = RedisLimiter(request.getfixturevalue("redis_url"))
        await found._redis.flushdb()  # type: ignore[attr-defined]
    await found.start()
    yield found
    await found.close()


async def test_requests_per_minute(limiter: Limiter) -> None:
    rates = Rates(rpm=3)
    taken = [await limiter.take("k1", rates) for _ in range(4)]
    assert [t.allowed for t in taken] == [True, True, True, False]
    assert int(taken[0].requests) == 2
    assert taken[3].requests < 1
    # another key has its own bucket
    assert (await limiter.take("k2", rates)).allowed


async def test_tokens_per_minute_are_spent_after_the_answer(limiter: Limiter) -> None:
    rates = Rates(tpm=1000)
    assert (await limiter.take("t", rates)).allowed
    await limiter.spend("t", rates, 1500)  # one big answer takes the level below zero
    refused = await limiter.take("t", rates)
    assert not refused.allowed
    assert refused.tokens < 0


async def test_buckets_refill_over_the_minute(limiter: Limiter) -> None:
    rates = Rates(rpm=60)  # one a second
    for _ in range(60):
        await limiter.take("fast", rates)
    assert not (await limiter.take("fast", rates)).allowed
    await asyncio.sleep(1.05)
    assert (await limiter.take("fast", rates)).allowed
    assert not (await limiter.take("fast", rates)).allowed


async def test_slots_go_to_waiters_in_order(limiter: Limiter) -> None:
    first = await limiter.acquire("p", 1, QUEUE)
    order: list[str] = []

    async def wait(name: str) -> None:
        slot = await limiter.acquire("p", 1, QUEUE)
        order.append(name)
        await asyncio.sleep(0.01)
        await slot.release()

    a = asyncio.create_task(wait("a"))
    await asyncio.sleep(0.05)
    b = asyncio.create_task(wait("b"))
    await asyncio.sleep(0.05)
    with pytest.raises(QueueFull):  # two wait already
        await limiter.acquire("p", 1, QUEUE)
    await first.release()
    await first.release()  # a second release gives back nothing more
    await asyncio.wait_for(asyncio.gather(a, b), 5)
    assert order == ["a", "b"]
    again = [await limiter.acquire("p", 1, QUEUE)]  # the pool is whole again
    with pytest.raises(QueueTimeout):
        await limiter.acquire("p", 1, Queueing(max_waiting=2, timeout=0.2))
    await again[0].release()


async def test_a_waiter_that_gives_up_leaks_nothing(limiter: Limiter) -> None:
    held = await limiter.acquire("q", 1, QUEUE)
    waiter = asyncio.create_task(limiter.acquire("q", 1, QUEUE))
    await asyncio.sleep(0.05)
    waiter.cancel()  # the client went away while queued
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await held.release()
    started = time.monotonic()
    slot = await limiter.acquire("q", 1, Queueing(max_waiting=0, timeout=1))
    assert time.monotonic() - started < 0.5
    await slot.release()


async def test_two_slots_at_once(limiter: Limiter) -> None:
    one = await limiter.acquire("two", 2, QUEUE)
    two = await limiter.acquire("two", 2, QUEUE)
    with pytest.raises(QueueFull):
        await limiter.acquire("two", 2, Queueing(max_waiting=0, timeout=1))
    await one.release()
    three = await limiter.acquire("two", 2, Queueing(max_waiting=0, timeout=1))
    await two.release()
    await three.release()


async def test_instances_share_limits_through_redis(redis_url: str) -> None:
    a, b = RedisLimiter(redis_url), RedisLimiter(redis_url)
    await a.start()
    await b.start()
    try:
        await a._redis.flushdb()
        rates = Rates(rpm=2)
        assert (await a.take("shared", rates)).allowed
        assert (await b.take("shared", rates)).allowed
        assert not (await a.take("shared", rates)).allowed
        held = await a.acquire("pool", 1, QUEUE)
        waiting = asyncio.create_task(b.acquire("pool", 1, QUEUE))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        await held.release()
        slot = await asyncio.wait_for(waiting, 2)  # b notices within its poll interval
        await slot.release()
    finally:
        await a.close()
        await b.close()


async def test_a_dead_instances_slots_come_back(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_limiter, "LEASE", 0.5)
    a, b = RedisLimiter(redis_url), RedisLimiter(redis_url)
    await a.start()
    await b.start()
    try:
        await a._redis.flushdb()
        await a.acquire("crash", 1, QUEUE)
        a._held.clear()  # a "dies": it stops renewing and never releases
        started = time.monotonic()
        slot = await b.acquire("crash", 1, Queueing(max_waiting=2, timeout=5))
        assert 0.3 < time.monotonic() - started < 2.5
        await slot.release()
    finally:
        await a.close()
        await b.close()


async def test_without_redis_an_instance_falls_back_to_its_own_limits() -> None:
    from tests.conftest import free_port
    from tests.redis_server import redis_server

    with redis_server(free_port()) as url:
        limiter = RedisLimiter(url)
        await limiter.start()
        rates = Rates(rpm=2)
        assert (await limiter.take("k", rates)).allowed
    # Redis is gone: requests are still served, under this process's own limits.
    try:
        assert (await limiter.take("k", rates)).allowed
        assert (await limiter.take("k", rates)).allowed
        assert not (await limiter.take("k", rates)).allowed
        slot = await limiter.acquire("p", 1, QUEUE)
        with pytest.raises(QueueFull):
            await limiter.acquire("p", 1, Queueing(max_waiting=0, timeout=1))
        await slot.release()
    finally:
        await limiter.close()


async def test_an_unreachable_redis_fails_at_startup() -> None:
    from headend.errors import ConfigError
    from tests.conftest import free_port

    limiter = RedisLimiter(f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    with pytest.raises(ConfigError) as caught:
        await limiter.start()
    assert "cannot reach" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    await limiter.close()


async def test_a_held_slot_outlives_its_lease_while_renewed(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_limiter, "LEASE", 0.5)
    monkeypatch.setattr(redis_limiter, "RENEW_EVERY", 0.1)
    a, b = RedisLimiter(redis_url), RedisLimiter(redis_url)
    await a.start()
    await b.start()
    try:
        await a._redis.flushdb()
        held = await a.acquire("long", 1, QUEUE)
        await asyncio.sleep(1.2)  # a long agent run: more than twice the lease
        with pytest.raises(QueueFull):
            await b.acquire("long", 1, Queueing(max_waiting=0, timeout=1))
        await held.release()
        slot = await b.acquire("long", 1, Queueing(max_waiting=0, timeout=1))
        await slot.release()
    finally:
        await a.close()
        await b.close()
