"""What a key spent in its budget period, and refusing its requests once that reaches its
budget.

A key's spend is what this process counted for it (``UsageMeter.counted``, exact at once)
plus what others spent: the key's usage rows in the store less this process's written part,
read when the key is first seen in a period and again in the background at most every
``REFRESH`` seconds, while requests go on with the value in hand. Every instance sharing the
store writes its usage there (every second while a budgeted key spends), so each counts the
others' spend within about two seconds.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from dataclasses import dataclass

from headend.errors import BudgetSpent, ServiceUnavailable
from headend.limits.budget import Budget, Window, money
from headend.runs.usage import UsageMeter
from headend.store.base import Store

log = logging.getLogger(__name__)

REFRESH = 1.0  # seconds others' spend is used before it is read again (in the background)
REMAINING = "x-headend-budget-remaining"


@dataclass(frozen=True, slots=True)
class _Others:
    """What others spent on a key from ``first_day`` on, as read at ``at``."""

    first_day: str
    amount: float
    at: float


class BudgetBook:
    def __init__(self, store: Store, meter: UsageMeter) -> None:
        self.store = store
        self.meter = meter
        self._others: dict[str, _Others] = {}  # by key id: in its current period
        self._reading: dict[tuple[str, str], asyncio.Task[_Others]] = {}
        self._windows: dict[str, Window] = {}  # by period: the current one

    def window(self, budget: Budget, now: float) -> Window:
        """The budget's current period (worked out once per period, not per request)."""
        window = self._windows.get(budget.period)
        if window is None or not window.holds(now):
            window = self._windows[budget.period] = budget.window(now)
        return window

    async def spent(self, key_id: str, first_day: str) -> float:
        """The key's cost from ``first_day`` on, this process's latest included."""
        others = self._others.get(key_id)
        if others is None or others.first_day != first_day:
            try:
                others = await asyncio.shield(self._read(key_id, first_day))
            except Exception:  # logged once, by the read
                raise ServiceUnavailable(
                    "This key's budget cannot be checked now: the store does not answer."
                ) from None
        elif time.monotonic() - others.at > REFRESH:
            self._read(key_id, first_day)  # for the next requests; this one goes on
        return others.amount + self.meter.counted(key_id, first_day)

    def _read(self, key_id: str, first_day: str) -> asyncio.Task[_Others]:
        """One read of the store at a time per key; whoever asks meanwhile shares it."""
        where = (key_id, first_day)
        reading = self._reading.get(where)
        if reading is None:
            # In a context of its own: it serves every request, not the one that began it.
            reading = asyncio.get_running_loop().create_task(
                self._fetch(key_id, first_day), context=contextvars.Context()
            )
            self._reading[where] = reading

            def done(task: asyncio.Task[_Others]) -> None:
                del self._reading[where]
                if not task.cancelled() and task.exception() is not None:
                    log.warning("reading a key's spend failed: %s", task.exception())

            reading.add_done_callback(done)
        return reading

    async def _fetch(self, key_id: str, first_day: str) -> _Others:
        async with self.meter.writing:  # no batch on its way: written and unwritten are known
            written = await self.store.spent(key_id, first_day)
            mine = self.meter.counted(key_id, first_day) - self.meter.unwritten(key_id, first_day)
        others = self._others[key_id] = _Others(first_day, written - mine, time.monotonic())
        return others

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
