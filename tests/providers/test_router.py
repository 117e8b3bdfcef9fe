"""The router's decisions, with a fake clock and sleep: retries, backoff, cooldown, fallback."""

from __future__ import annotations

import random

import pytest

from headend.errors import ProviderError, ProviderTimeout, UpstreamFailure, UpstreamRejected
from headend.providers.base import ChatCall
from headend.providers.model_routes import Target
from headend.providers.resilience import (
    Cooldown,
    Resilience,
    Retry,
    backoff_delay,
    parse_retry_after,
)
from headend.providers.router import Router
from headend.types import Json
from tests.fakes import ScriptedProvider

A, B = Target("a", "m"), Target("b", "m")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Failing(ScriptedProvider):
    """Fails with the queued errors, then answers."""

    def __init__(self, name: str, *errors: Exception, **resilience: object) -> None:
        super().__init__(name=name, resilience=Resilience(**resilience))
        self.errors = list(errors)

    async def complete(self, call: ChatCall) -> Json:
        if self.errors:
            self.calls.append(call)
            raise self.errors.pop(0)
        return await super().complete(call)


def retryable(after: float | None = None) -> UpstreamFailure:
    return UpstreamFailure("boom", retryable=True, retry_after=after)


def router(clock: Clock, *providers: ScriptedProvider) -> Router:
    return Router(
        {p.name: p for p in providers}, clock=clock, sleep=clock.sleep, rng=random.Random(1)
    )


async def test_retryable_failures_are_retried_with_growing_backoff() -> None:
    clock = Clock()
    a = Failing("a", retryable(), retryable(), retry=Retry(attempts=3, backoff=1, max_backoff=10))
    await router(clock, a).complete([A], ChatCall(body={}))
    assert len(a.calls) == 3
    assert 0 <= clock.slept[0] <= 1
    assert 0 <= clock.slept[1] <= 2


async def test_retry_after_is_honoured_and_a_long_one_moves_on() -> None:
    clock = Clock()
    a = Failing("a", retryable(after=4), retryable(after=60), retry=Retry(max_retry_after=30))
    b = Failing("b")
    _answer, target = await router(clock, a, b).complete([A, B], ChatCall(body={}))
    assert clock.slept == [4]
    assert target == B


async def test_non_retryable_failures_and_timeouts_move_on_at_once() -> None:
    clock = Clock()
    a = Failing("a", UpstreamFailure("401", retryable=False))
    b = Failing("b", ProviderTimeout("slow"))
    c = Failing("c")
    await router(clock, a, b, c).complete([A, B, Target("c")], ChatCall(body={}))
    assert (len(a.calls), len(b.calls), len(c.calls)) == (1, 1, 1)
    assert clock.slept == []


async def test_a_rejected_request_is_neither_retried_nor_passed_on() -> None:
    clock = Clock()
    a = Failing("a", UpstreamRejected(400, "bad"))
    b = Failing("b")
    with pytest.raises(UpstreamRejected):
        await router(clock, a, b).complete([A, B], ChatCall(body={}))
    assert b.calls == []


async def test_all_failing_is_502_and_all_timing_out_is_504() -> None:
    clock = Clock()
    one = Retry(attempts=1)
    with pytest.raises(ProviderError) as failed:
        await router(
            clock,
            Failing("a", retryable(), retry=one),
            Failing("b", ProviderTimeout("slow"), retry=one),
        ).complete([A, B], ChatCall(body={}))
    assert failed.value.status == 502
    with pytest.raises(ProviderTimeout):
        await router(clock, Failing("a", ProviderTimeout("slow"))).complete([A], ChatCall(body={}))


async def test_cooldown_skips_a_failing_provider_then_lets_it_back() -> None:
    clock = Clock()
    cool = {"retry": Retry(attempts=1), "cooldown": Cooldown(after_failures=2, seconds=30)}
    a = Failing("a", retryable(), retryable(), **cool)
    b = Failing("b")
    route = router(clock, a, b)
    for _ in range(3):
        await route.complete([A, B], ChatCall(body={}))
    assert len(a.calls) == 2  # the third request skipped it
    assert route.cooling("a")
    clock.now += 31
    assert not route.cooling("a")
    _answer, target = await route.complete([A, B], ChatCall(body={}))
    assert target == A
    assert not route.cooling("a")


async def test_when_every_target_cools_down_they_are_tried_anyway() -> None:
    clock = Clock()
    cool = {"retry": Retry(attempts=1), "cooldown": Cooldown(after_failures=1, seconds=30)}
    a = Failing("a", retryable(), **cool)
    route = router(clock, a)
    with pytest.raises(ProviderError):
        await route.complete([A], ChatCall(body={}))
    assert route.cooling("a")
    await route.complete([A], ChatCall(body={}))
    assert len(a.calls) == 2


def test_backoff_is_bounded_and_jittered() -> None:
    retry = Retry(backoff=0.5, max_backoff=4)
    rng = random.Random(7)
    delays = [backoff_delay(retry, attempt, rng) for attempt in range(1, 10)]
    assert all(0 <= d <= min(4, 0.5 * 2 ** (n - 1)) for n, d in enumerate(delays, 1))
    assert len(set(delays)) == len(delays)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Sun, 22 Nov 2026 04:00:10 GMT"}, 10.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_forms(headers: dict[str, str], expected: float | None) -> None:
    now = 1795320000.0  # 2026-11-22 04:00:00 UTC
    assert parse_retry_after(headers, now=now) == expected


async def test_the_cooldown_gauge_clears_when_the_cooldown_ends_by_itself() -> None:
    clock = Clock()
    cool = {"retry": Retry(attempts=1), "cooldown": Cooldown(after_failures=1, seconds=30)}
    route = router(clock, Failing("a", retryable(), **cool), Failing("b"))
    gauge = route.metrics.cooling.labels("a")
    await route.complete([A, B], ChatCall(body={}))
    assert gauge._value.get() == 1
    clock.now += 31
    assert gauge._value.get() == 1  # nothing has asked since
    route.report_cooling()  # what a scrape does first
    assert gauge._value.get() == 0
