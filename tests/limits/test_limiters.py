"""The one suite both limiters pass: in memory, and shared through a real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from headend.limits import redis as redis_limiter
from headend.limits.base import (
    Bucket,
    Limiter,
    Pool,
    QueueFull,
    Queueing,
    QueueTimeout,
    Rates,
    acquire,
    take,
)
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
        await found._redis.flushdb()
    await found.start()
    yield found
    await found.close()


async def test_requests_per_minute(limiter: Limiter) -> None:
    rates = Rates(rpm=3)
    taken = [await take(limiter, "k1", rates) for _ in range(4)]
    assert [t.allowed for t in taken] == [True, True, True, False]
    assert int(taken[0].requests) == 2
    assert taken[3].requests < 1
    # another key has its own bucket
    assert (await take(limiter, "k2", rates)).allowed


async def test_tokens_per_minute_are_spent_after_the_answer(limiter: Limiter) -> None:
    rates = Rates(tpm=1000)
    assert (await take(limiter, "t", rates)).allowed
    await limiter.leave([], Bucket("t", rates), 1500)  # one big answer takes the level below zero
    refused = await take(limiter, "t", rates)
    assert not refused.allowed
    assert refused.tokens < 0


async def test_buckets_refill_over_the_minute(limiter: Limiter) -> None:
    rates = Rates(rpm=60)  # one a second
    for _ in range(60):
        await take(limiter, "fast", rates)
    assert not (await take(limiter, "fast", rates)).allowed
    await asyncio.sleep(1.05)
    assert (await take(limiter, "fast", rates)).allowed
    assert not (await take(limiter, "fast", rates)).allowed


async def test_slots_go_to_waiters_in_order(limiter: Limiter) -> None:
    first = await acquire(limiter, "p", 1, QUEUE)
    order: list[str] = []

    async def wait(name: str) -> None:
        slot = await acquire(limiter, "p", 1, QUEUE)
        order.append(name)
        await asyncio.sleep(0.01)
        await slot.release()

    a = asyncio.create_task(wait("a"))
    await asyncio.sleep(0.05)
    b = asyncio.create_task(wait("b"))
    await asyncio.sleep(0.05)
    with pytest.raises(QueueFull):  # two wait already
        await acquire(limiter, "p", 1, QUEUE)
    await first.release()
    await first.release()  # a second release gives back nothing more
    await asyncio.wait_for(asyncio.gather(a, b), 5)
    assert order == ["a", "b"]
    again = [await acquire(limiter, "p", 1, QUEUE)]  # the pool is whole again
    with pytest.raises(QueueTimeout):
        await acquire(limiter, "p", 1, Queueing(max_waiting=2, timeout=0.2))
    await again[0].release()


async def test_a_waiter_that_gives_up_leaks_nothing(limiter: Limiter) -> None:
    held = await acquire(limiter, "q", 1, QUEUE)
    waiter = asyncio.create_task(acquire(limiter, "q", 1, QUEUE))
    await asyncio.sleep(0.05)
    waiter.cancel()  # the client went away while queued
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await held.release()
    started = time.monotonic()
    slot = await acquire(limiter, "q", 1, Queueing(max_waiting=0, timeout=1))
    assert time.monotonic() - started < 0.5
    await slot.release()


async def test_two_slots_at_once(limiter: Limiter) -> None:
    one = await acquire(limiter, "two", 2, QUEUE)
    two = await acquire(limiter, "two", 2, QUEUE)
    with pytest.raises(QueueFull):
        await acquire(limiter, "two", 2, Queueing(max_waiting=0, timeout=1))
    await one.release()
    three = await acquire(limiter, "two", 2, Queueing(max_waiting=0, timeout=1))
    await two.release()
    await three.release()


async def test_instances_share_limits_through_redis(redis_url: str) -> None:
    a, b = RedisLimiter(redis_url), RedisLimiter(redis_url)
    await a.start()
    await b.start()
    try:
        await a._redis.flushdb()
        rates = Rates(rpm=2)
        assert (await take(a, "shared", rates)).allowed
        assert (await take(b, "shared", rates)).allowed
        assert not (await take(a, "shared", rates)).allowed
        held = await acquire(a, "pool", 1, QUEUE)
        waiting = asyncio.create_task(acquire(b, "pool", 1, QUEUE))
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
        await acquire(a, "crash", 1, QUEUE)
        a._held.clear()  # a "dies": it stops renewing and never releases
        started = time.monotonic()
        slot = await acquire(b, "crash", 1, Queueing(max_waiting=2, timeout=5))
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
        assert (await take(limiter, "k", rates)).allowed
    # Redis is gone: requests are still served, under this process's own limits.
    try:
        assert (await take(limiter, "k", rates)).allowed
        assert (await take(limiter, "k", rates)).allowed
        assert not (await take(limiter, "k", rates)).allowed
        slot = await acquire(limiter, "p", 1, QUEUE)
        with pytest.raises(QueueFull):
            await acquire(limiter, "p", 1, Queueing(max_waiting=0, timeout=1))
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
        held = await acquire(a, "long", 1, QUEUE)
        await asyncio.sleep(1.2)  # a long agent run: more than twice the lease
        with pytest.raises(QueueFull):
            await acquire(b, "long", 1, Queueing(max_waiting=0, timeout=1))
        await held.release()
        slot = await acquire(b, "long", 1, Queueing(max_waiting=0, timeout=1))
        await slot.release()
    finally:
        await a.close()
        await b.close()


async def test_a_refused_bucket_takes_nothing_from_the_others(limiter: Limiter) -> None:
    visitor, address = Bucket("visitor", Rates(rpm=5)), Bucket("address", Rates(rpm=1))
    assert (await limiter.enter([visitor, address], [], QUEUE)).refused is None
    refused = await limiter.enter([visitor, address], [Pool("after", 1)], QUEUE)
    assert refused.refused == 1
    assert refused.slots == []  # and no slot was taken
    assert int(refused.levels[0].requests) == 4  # the visitor's request was not taken
    assert int((await take(limiter, "visitor", Rates(rpm=5))).requests) == 3
    slot = await acquire(limiter, "after", 1, Queueing(max_waiting=0, timeout=1))
    await slot.release()


async def test_a_request_waits_for_its_second_pool_holding_the_first(limiter: Limiter) -> None:
    other = await acquire(limiter, "agent", 1, QUEUE)
    pools = [Pool("key", 1), Pool("agent", 1)]
    waiting = asyncio.create_task(limiter.enter([], pools, QUEUE))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    with pytest.raises(QueueFull):  # the key's one slot is held by the waiter
        await acquire(limiter, "key", 1, Queueing(max_waiting=0, timeout=1))
    await limiter.leave([other], None, 0)
    entry = await asyncio.wait_for(waiting, 2)
    assert len(entry.slots) == 2
    assert entry.waited[1] >= 0.05  # the wait is the second pool's
    await limiter.leave(entry.slots, None, 0)
    # A waiter cancelled while holding the first pool gives it back.
    held = await acquire(limiter, "agent", 1, QUEUE)
    cancelled = asyncio.create_task(limiter.enter([], pools, QUEUE))
    await asyncio.sleep(0.1)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    slot = await acquire(limiter, "key", 1, Queueing(max_waiting=0, timeout=1))
    await limiter.leave([slot, held], None, 0)


async def test_admission_is_one_round_trip_in_and_one_out(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = RedisLimiter(redis_url)
    await limiter.start()
    try:
        await limiter._redis.flushdb()
        key = Bucket("key_1", Rates(rpm=100, tpm=10_000))
        pools = [Pool("key:key_1", 2), Pool("agent:a", 2), Pool("global", 8)]
        first = await limiter.enter([key], pools, QUEUE)  # loads the scripts
        await limiter.leave(first.slots, key, 5)
        sent: list[str] = []
        send = limiter._redis.execute_command

        async def counted(*args: object, **options: object) -> object:
            sent.append(str(args[0]))
            return await send(*args, **options)

        monkeypatch.setattr(limiter._redis, "execute_command", counted)
        entry = await limiter.enter([key], pools, QUEUE)
        assert len(entry.slots) == 3
        assert sent == ["EVALSHA"]
        await limiter.leave(entry.slots, key, 40)
        assert sent == ["EVALSHA", "EVALSHA"]
        monkeypatch.undo()
        # Every key shares one hash tag: a Redis Cluster keeps them on one node.
        stored = await limiter._redis.keys("*")
        assert any(":tokens" in name for name in stored)
        assert all("{limits}" in name for name in stored)
    finally:
        await limiter.close()
