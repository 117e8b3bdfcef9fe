"""Deadlines on one timer behave as asyncio.timeout: a late block raises TimeoutError and
the task goes on; a block in time is untouched; a cancellation from elsewhere stays one."""

from __future__ import annotations

import asyncio
import time

import pytest

from headend.providers.deadlines import Deadlines


async def test_a_block_past_its_deadline_raises_timeout_and_the_task_goes_on() -> None:
    deadlines = Deadlines()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with deadlines.after(0.05):
            await asyncio.sleep(5)
    assert 0.04 <= time.monotonic() - started < 1
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    await asyncio.sleep(0.01)  # not cancelled again later


async def test_a_block_in_time_is_not_cancelled_and_the_timer_serves_the_next() -> None:
    deadlines = Deadlines()
    async with deadlines.after(0.05):
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.1)  # the first deadline's time passes with no block in force
    async with deadlines.after(0.2):
        await asyncio.sleep(0.01)
    with pytest.raises(TimeoutError):
        async with deadlines.after(0.05):
            await asyncio.sleep(5)


async def test_each_of_many_blocks_ends_at_its_own_deadline() -> None:
    deadlines = Deadlines()
    ended: dict[str, float] = {}
    started = time.monotonic()

    async def wait(name: str, seconds: float, work: float) -> None:
        try:
            async with deadlines.after(seconds):
                await asyncio.sleep(work)
        except TimeoutError:
            ended[name] = time.monotonic() - started

    # a later block with an earlier deadline moves the timer forward
    await asyncio.gather(wait("late", 0.4, 5), wait("early", 0.05, 5), wait("in time", 0.05, 0.001))
    assert set(ended) == {"late", "early"}
    assert ended["early"] < 0.3 <= ended["late"] < 2


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    deadlines = Deadlines()

    async def blocked() -> None:
        async with deadlines.after(5):
            await asyncio.sleep(5)

    task = asyncio.ensure_future(blocked())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_one_set_of_deadlines_serves_a_new_event_loop() -> None:
    deadlines = Deadlines()

    async def late() -> bool:
        try:
            async with deadlines.after(0.05):
                await asyncio.sleep(5)
        except TimeoutError:
            return True
        return False

    async def idle() -> None:
        async with deadlines.after(0.01):  # leaves a timer, earlier than late's, on this loop
            pass

    asyncio.run(idle())
    assert asyncio.run(late())
