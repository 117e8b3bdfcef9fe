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


class UsageMeter:
    """Counts in memory until ``flush`` writes them. What a key spent is the store's rows
    plus ``unwritten`` cost: ``writing`` is held while a batch moves from one to the other,
    and ``batches`` counts the moves, so a reader sees every cost once."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending = _totals()
        self._costs: defaultdict[str | None, defaultdict[str, float]] = defaultdict(
            lambda: defaultdict(float)
        )  # the pending cost by key and day
        self._day = ""
        self._day_ends = 0.0  # the current UTC day's name, worked out once a day
        self.writing = asyncio.Lock()
        self.batches = 0
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

    def unwritten(self, key_id: str, since_day: str) -> float:
        """The key's cost from ``since_day`` on not written yet."""
        days = self._costs.get(key_id)
        return sum(cost for day, cost in days.items() if day >= since_day) if days else 0.0

    async def flush(self) -> None:
        async with self.writing:
            self.hurried = False
            pending, self._pending = self._pending, _totals()
            costs, self._costs = self._costs, defaultdict(lambda: defaultdict(float))
            if not pending:
                return
            self.batches += 1
            rows = [
                UsageRow(day, key, model, int(requests), int(prompt), int(completion), cost)
                for (day, key, model), (requests, prompt, completion, cost) in pending.items()
            ]
            try:
                await self.store.add_usage(rows)
            except BaseException:  # counted again with what comes next, written next time
                self._restore(pending, costs)
                raise

    def _restore(self, pending: Totals, costs: defaultdict[str | None, Any]) -> None:
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
