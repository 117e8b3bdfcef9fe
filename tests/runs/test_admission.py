"""Admission: which pools a request waits in, its rate headers, and what it is charged."""

from __future__ import annotations

from pathlib import Path

import pytest

from headend.access.principal import Principal
from headend.config import LimitSettings
from headend.errors import RateLimited
from headend.limits.base import Levels, Rates
from headend.limits.memory import MemoryLimiter
from headend.limits.refusals import duration, rate_headers
from headend.runs.admission import Admission
from headend.runs.usage import UsageMeter, utc_day
from headend.store.sqlite import SqliteStore

KEY = Principal("key_1", frozenset(["chat"]))


def admission(store: SqliteStore | None = None, **limits: object) -> Admission:
    settings = LimitSettings.model_validate({"max_queue": 0, **limits})
    return Admission(MemoryLimiter(), settings, UsageMeter(store))  # type: ignore[arg-type]


async def test_global_and_model_route_pools() -> None:
    gate = admission(concurrency=2, model_concurrency=1)
    first = await gate.admit(KEY, "gpt", None)  # a model route: its pool and the global one
    with pytest.raises(RateLimited) as refused:
        await gate.admit(KEY, "gpt", None)
    assert "'model:gpt'" in refused.value.message
    await gate.admit(KEY, "other", None)  # another route, the second global slot
    with pytest.raises(RateLimited) as full:
        await gate.admit(KEY, "agent", 4)
    assert "'global'" in full.value.message
    await gate.leave(first, lambda: 0)
    await gate.admit(KEY, "agent", 4)
    assert [pool.name for pool in gate.pools(KEY, "agent", 4)] == ["agent:agent", "global"]


async def test_a_request_cut_before_its_usage_is_charged_its_prompt(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "u.db")
    await store.start()
    try:
        gate = admission(store)
        ticket = await gate.admit(KEY, "gpt", None)
        await gate.leave(ticket, lambda: 40)  # no usage was reported
        await gate.leave(ticket, lambda: 999)  # a second leave counts nothing
        await gate.meter.flush()
        [row] = await store.usage(utc_day(0))
        assert (row.requests, row.prompt_tokens, row.completion_tokens) == (1, 40, 0)
    finally:
        await store.close()


def test_openai_style_reset_durations_and_headers() -> None:
    assert [duration(s) for s in (0.02, 1.5, 12, 360)] == ["20ms", "1.5s", "12s", "6m0s"]
    headers = rate_headers(Rates(rpm=60, tpm=1000), Levels(True, 29.5, -10))
    assert headers == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "29",
        "x-ratelimit-reset-requests": "30.5s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "1m1s",
    }
