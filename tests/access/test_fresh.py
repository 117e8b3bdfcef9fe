"""Key records and logins are read from the store at most once at a time, refreshed ahead
of their expiry while requests go on being served, and never served past their life."""

from __future__ import annotations

import asyncio

import pytest

from headend.access.fresh import FreshCache
from headend.observability.logs import current_request


class Store:
    """A lookup that counts its calls and returns when told to."""

    def __init__(self) -> None:
        self.calls = 0
        self.version = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def lookup(self, key: str) -> str:
        self.calls += 1
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("the store is down")
        return f"{key}@{self.version}"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def cache(store: Store, clock: Clock) -> FreshCache[str, str]:
    return FreshCache(store.lookup, ttl=1.0, ahead=0.25, clock=clock)


async def test_requests_arriving_together_share_one_lookup() -> None:
    store, clock = Store(), Clock()
    fresh = cache(store, clock)
    store.gate.clear()
    waiting = [asyncio.ensure_future(fresh.get("k")) for _ in range(16)]
    await asyncio.sleep(0)
    store.gate.set()
    assert await asyncio.gather(*waiting) == ["k@0"] * 16
    assert store.calls == 1


async def test_a_value_in_use_is_refreshed_in_the_background_without_waiting() -> None:
    store, clock = Store(), Clock()
    fresh = cache(store, clock)
    assert await fresh.get("k") == "k@0"
    clock.now += 0.5
    assert await fresh.get("k") == "k@0"
    assert store.calls == 1  # not yet in its last quarter second

    store.version, store.gate = 1, asyncio.Event()  # the store changed; its next read is slow
    clock.now += 0.3
    assert await asyncio.wait_for(fresh.get("k"), 0.5) == "k@0"  # served at once
    assert store.calls == 2
    assert await fresh.get("k") == "k@0"  # the refresh under way is not started twice
    assert store.calls == 2
    store.gate.set()
    await asyncio.sleep(0.01)
    assert await fresh.get("k") == "k@1"


async def test_a_value_is_never_served_past_its_life() -> None:
    store, clock = Store(), Clock()
    fresh = cache(store, clock)
    await fresh.get("k")
    store.version, store.gate = 1, asyncio.Event()
    clock.now += 1.0  # expired: this request waits for the store
    waiting = asyncio.ensure_future(fresh.get("k"))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    store.gate.set()
    assert await waiting == "k@1"


async def test_a_life_counts_from_when_its_lookup_began() -> None:
    store, clock = Store(), Clock()
    fresh = cache(store, clock)
    store.gate.clear()
    waiting = asyncio.ensure_future(fresh.get("k"))
    await asyncio.sleep(0)
    clock.now += 0.9  # the store took most of the second to answer
    store.gate.set()
    assert await waiting == "k@0"
    clock.now += 0.2
    store.version = 1
    assert await fresh.get("k") == "k@1"


async def test_a_waiter_leaving_does_not_cancel_the_lookup_for_the_others() -> None:
    store, clock = Store(), Clock()
    fresh = cache(store, clock)
    store.gate.clear()
    leaving = asyncio.ensure_future(fresh.get("k"))
    staying = asyncio.ensure_future(fresh.get("k"))
    await asyncio.sleep(0)
    leaving.cancel()
    store.gate.set()
    assert await staying == "k@0"
    assert store.calls == 1


async def test_a_failed_lookup_reaches_its_waiters_and_the_next_request_tries_again() -> None:
    store, clock = Store(), Clock()
    fresh = cache(store, clock)
    store.fail = True
    with pytest.raises(RuntimeError):
        await fresh.get("k")
    store.fail = False
    assert await fresh.get("k") == "k@0"
    assert store.calls == 2


async def test_a_failed_refresh_keeps_serving_until_the_value_expires() -> None:
    store, clock = Store(), Clock()
    fresh = cache(store, clock)
    await fresh.get("k")
    store.fail = True
    clock.now += 0.8
    assert await fresh.get("k") == "k@0"  # refresh started and failed in the background
    await asyncio.sleep(0.01)
    assert await fresh.get("k") == "k@0"
    clock.now += 0.2
    with pytest.raises(RuntimeError):
        await fresh.get("k")


async def test_forget_reads_again_at_once() -> None:
    store, clock = Store(), Clock()
    fresh = cache(store, clock)
    await fresh.get("k")
    store.version = 1
    fresh.forget("k")
    assert await fresh.get("k") == "k@1"


async def test_a_lookup_belongs_to_no_request() -> None:
    """Shared by every request that waits for it, the lookup runs outside the context of
    the one that began it: its log lines carry no request's id."""
    seen: list[str | None] = []

    async def lookup(key: str) -> str:
        seen.append(current_request.get())
        return key

    fresh: FreshCache[str, str] = FreshCache(lookup, ttl=1.0, ahead=0.25, clock=Clock())
    inside = current_request.set("req_first")
    try:
        assert await fresh.get("k") == "k"
    finally:
        current_request.reset(inside)
    assert seen == [None]
