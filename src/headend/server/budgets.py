"""What a key spent in its budget period, and refusing its requests once that reaches its
budget.

A key's spend is its usage rows in the store (every instance sharing the store writes its
counts there every few seconds) plus this instance's cost not written yet. The rows' sum is
read again after each of this instance's writes and at least every ``REFRESH`` seconds, so
every instance counts every other's spend within a few seconds, and its own at once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from headend.errors import BudgetSpent
from headend.limits.budget import Budget, Window, money
from headend.server.usage import UsageMeter
from headend.store.base import Store

REFRESH = 1.0  # seconds the store's sum is trusted without a write of this instance
REMAINING = "x-headend-budget-remaining"


@dataclass(frozen=True, slots=True)
class _Written:
    """A key's spend in the store from ``first_day`` on, as read after ``batch`` writes."""

    first_day: str
    amount: float
    batch: int
    at: float


class BudgetBook:
    def __init__(self, store: Store, meter: UsageMeter) -> None:
        self.store = store
        self.meter = meter
        self._written: dict[str, _Written] = {}  # by key id: its current period's
        self._reading: dict[tuple[str, str], asyncio.Future[_Written]] = {}
        self._windows: dict[str, Window] = {}  # by period: the current one

    def window(self, budget: Budget, now: float) -> Window:
        """The budget's current period (worked out once per period, not per request)."""
        window = self._windows.get(budget.period)
        if window is None or not window.holds(now):
            window = self._windows[budget.period] = budget.window(now)
        return window

    async def spent(self, key_id: str, first_day: str) -> float:
        """The key's cost from ``first_day`` on, this instance's latest included."""
        written = self._written.get(key_id)
        while (
            written is None
            or written.first_day != first_day
            or written.batch != self.meter.batches
            or time.monotonic() - written.at > REFRESH
        ):
            written = await self._read(key_id, first_day)
            if written.batch == self.meter.batches:  # no write began since: add what is not
                break
        return written.amount + self.meter.unwritten(key_id, first_day)

    async def _read(self, key_id: str, first_day: str) -> _Written:
        """One read of the store at a time per key, whoever asks meanwhile shares it."""
        where = (key_id, first_day)
        reading = self._reading.get(where)
        if reading is None:
            reading = self._reading[where] = asyncio.ensure_future(self._fetch(key_id, first_day))
            reading.add_done_callback(lambda _: self._reading.pop(where, None))
        return await asyncio.shield(reading)

    async def _fetch(self, key_id: str, first_day: str) -> _Written:
        async with self.meter.writing:  # not while a batch is half way to the store
            batch = self.meter.batches
            amount = await self.store.spent(key_id, first_day)
        written = self._written[key_id] = _Written(first_day, amount, batch, time.monotonic())
        return written

    async def check(self, key_id: str | None, budget: Budget | None) -> dict[str, str]:
        """The key's remaining budget as a header for its answer, or ``BudgetSpent`` once
        its period's spend reached the budget."""
        if key_id is None or budget is None:
            return {}
        window = self.window(budget, time.time())
        spent = await self.spent(key_id, window.first_day)
        headers = {REMAINING: money(max(budget.amount - spent, 0.0))}
        if spent >= budget.amount:
            raise BudgetSpent(
                f"This key's budget of {money(budget.amount)} per {budget.period} is spent "
                f"({money(spent)} since {window.first_day}). It resets at {window.resets}.",
                headers=headers | {"x-should-retry": "false"},
            )
        return headers
