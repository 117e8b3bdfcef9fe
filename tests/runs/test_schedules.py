"""The scheduler on a real store with a clock of the test's: each fire once across
instances, fires missed while everything was down not made up, a refusal recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from headend.agents.registry import Agent
from headend.agents.spec import AgentSpec, ScheduleEntry
from headend.errors import RateLimited
from headend.runs.schedules import LATE, Scheduler
from headend.store.sqlite import SqliteStore

MONDAY_0900 = 1_764_579_600.0  # 2025-12-01 09:00:00 UTC, a Monday


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    found = SqliteStore(tmp_path / "s.db")
    await found.start()
    yield found
    await found.close()


def agent(*entries: ScheduleEntry) -> Agent:
    return Agent(spec=AgentSpec(id="digest", schedule=list(entries)), targets=())


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_each_fire_starts_one_run_across_instances(store: SqliteStore) -> None:
    weekdays = ScheduleEntry(cron="0 9 * * 1-5", input="Summarise yesterday.")
    started: list[str] = []

    async def start(found: Agent, entry: ScheduleEntry) -> str:
        started.append(entry.input)
        return f"resp_{len(started)}"

    clock = Clock(MONDAY_0900 + 2)
    one = Scheduler(store, lambda: [agent(weekdays)], start, clock)
    two = Scheduler(store, lambda: [agent(weekdays)], start, clock)
    await one.tick()
    await two.tick()  # the same fire: taken already
    await one.tick()
    assert started == ["Summarise yesterday."]
    clock.now = MONDAY_0900 + 86_400 + 5  # Tuesday 09:00:05: the next fire, once
    await two.tick()
    await one.tick()
    assert len(started) == 2
    fires = await store.recent_fires("digest", 10)
    assert [(f.fire_at, f.response_id) for f in fires] == [
        (MONDAY_0900 + 86_400, "resp_2"),
        (MONDAY_0900, "resp_1"),
    ]
    clock.now = MONDAY_0900 + 5 * 86_400 + 10  # Saturday: nothing due
    await one.tick()
    assert len(started) == 2
    assert one.pause() == 30.0  # sleeps its longest, the next fire being Monday's


async def test_fires_missed_while_down_are_not_made_up(store: SqliteStore) -> None:
    hourly = ScheduleEntry(cron="0 * * * *", input="Check the queue.")
    started: list[float] = []

    async def start(found: Agent, entry: ScheduleEntry) -> str:
        started.append(clock.now)
        return "resp_x"

    # down from 09:00 to 12:30: the fires of 10, 11 and 12 o'clock passed unseen
    clock = Clock(MONDAY_0900 + 3.5 * 3600)
    scheduler = Scheduler(store, lambda: [agent(hourly)], start, clock)
    await scheduler.tick()
    assert started == []
    clock.now = MONDAY_0900 + 4 * 3600 + LATE - 1  # 13:00:59: within the minute, it fires
    await scheduler.tick()
    assert started == [clock.now]
    assert 0.05 <= scheduler.pause() <= 30.0


async def test_a_run_that_cannot_start_is_recorded_with_why(store: SqliteStore) -> None:
    every_minute = ScheduleEntry(cron="* * * * *", input="Ping.")

    async def start(found: Agent, entry: ScheduleEntry) -> str:
        raise RateLimited("Too many runs at once.", kind="concurrency", headers={})

    scheduler = Scheduler(store, lambda: [agent(every_minute)], start, Clock(MONDAY_0900 + 1))
    await scheduler.tick()
    (fire,) = await store.recent_fires("digest", 10)
    assert fire.response_id is None
    assert fire.error == "Too many runs at once."


def test_an_entry_takes_five_fields() -> None:
    from pydantic import ValidationError

    for wrong in ("* * * *", "0 0 9 * * 1", "61 * * * *", "every day"):
        with pytest.raises(ValidationError, match="five fields"):
            ScheduleEntry(cron=wrong, input="x")
    with pytest.raises(ValidationError):
        ScheduleEntry(cron="* * * * *", input="")
    entry = ScheduleEntry(cron="30 9 * * *", input="x")
    assert entry.previous(MONDAY_0900 + 1800) == MONDAY_0900 + 1800  # at its time exactly
    assert entry.next(MONDAY_0900 + 1800) == MONDAY_0900 + 1800 + 86_400
