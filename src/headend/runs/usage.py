"""Tokens used, by key, agent or model, and UTC day: counted in memory, written in batches."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

from headend.store.base import Store, UsageRow


def utc_day(at: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at))


DAY = 86_400
COST_DIGITS = 6  # a millionth of the currency: a token at a price per million tokens


Totals = defaultdict[tuple[str, str | None, str], list[float]]


def _totals() -> Totals:
    return defaultdict(lambda: [0, 0, 0, 0.0])


ByKeyAndDay = defaultdict[str | None, defaultdict[str, float]]
KEPT_DAYS = 40  # a month's budget period and more


def _by_key_and_day() -> ByKeyAndDay:
    return defaultdict(lambda: defaultdict(float))


def _since(costs: ByKeyAndDay, key_id: str, since_day: str) -> float:
    days = costs.get(key_id)
    return sum(cost for day, cost in days.items() if day >= since_day) if days else 0.0


class UsageMeter:
    """Counts in memory until ``flush`` writes them (``writing`` is held meanwhile). Each
    key's cost is also kept per day as ``counted`` by this process, written or not, so what
    a key spent is what others wrote (the store's rows less this process's written part) plus
    ``counted``, whatever writes happen between."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending = _totals()
        self._costs = _by_key_and_day()  # the cost not written yet
        self._counted = _by_key_and_day()  # all the cost this process counted
        self._day = ""
        self._day_ends = 0.0  # the current UTC day's name, worked out once a day
        self.writing = asyncio.Lock()
        self.hurried = False  # a budgeted key spent: write at the next second

    def hurry(self) -> None:
        self.hurried = True

    def _today(self) -> str:
        now = time.time()
        if now >= self._day_ends or now < self._day_ends - DAY:
            self._day = utc_day(now)
            self._day_ends = (now // DAY + 1) * DAY
        return self._day

    def add(self, key_id: str | None, model: str, usage: dict[str, Any], cost: float) -> None:
        totals = self._pending[(self._today(), key_id, model)]
        totals[0] += 1
        totals[1] += int(usage.get("prompt_tokens") or 0)
        totals[2] += int(usage.get("completion_tokens") or 0)
        totals[3] += cost
        if cost:
            self._costs[key_id][self._day] += cost
            self._counted[key_id][self._day] += cost

    def unwritten(self, key_id: str, since_day: str) -> float:
        """The key's cost from ``since_day`` on not written yet."""
        return _since(self._costs, key_id, since_day)

    def counted(self, key_id: str, since_day: str) -> float:
        """The key's cost from ``since_day`` on counted by this process, written or not."""
        return _since(self._counted, key_id, since_day)

    async def flush(self) -> None:
        async with self.writing:
            self.hurried = False
            pending, self._pending = self._pending, _totals()
            costs, self._costs = self._costs, _by_key_and_day()
            if not pending:
                return
            self._forget_before(utc_day(time.time() - KEPT_DAYS * DAY))
            rows = [
                UsageRow(day, key, model, int(requests), int(prompt), int(completion), cost)
                for (day, key, model), (requests, prompt, completion, cost) in pending.items()
            ]
            try:
                await self.store.add_usage(rows)
            except BaseException:  # counted again with what comes next, written next time
                self._restore(pending, costs)
                raise

    def _forget_before(self, day: str) -> None:
        """Counted days no budget period reaches back to any more."""
        for key_id, days in list(self._counted.items()):
            for old in [d for d in days if d < day]:
                del days[old]
            if not days:
                del self._counted[key_id]

    def _restore(self, pending: Totals, costs: ByKeyAndDay) -> None:
        for where, totals in pending.items():
            mine = self._pending[where]
            for i, value in enumerate(totals):
                mine[i] += value
        for key_id, days in costs.items():
            for day, cost in days.items():
                self._costs[key_id][day] += cost


def usage_entry(row: UsageRow) -> dict[str, object]:
    """A usage row as the admin API lists it."""
    return {
        "object": "usage",
        "day": row.day,
        "key_id": row.key_id,
        "model": row.model,
        "requests": row.requests,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "total_tokens": row.prompt_tokens + row.completion_tokens,
        "cost": round(row.cost, COST_DIGITS),
    }
