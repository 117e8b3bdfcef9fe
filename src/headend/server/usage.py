"""Tokens used, by key, agent or model, and UTC day: counted in memory, written in batches."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from headend.store.base import Store, UsageRow


def utc_day(at: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at))


DAY = 86_400
COST_DIGITS = 6  # a millionth of the currency: a token at a price per million tokens


class UsageMeter:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: defaultdict[tuple[str, str | None, str], list[float]] = defaultdict(
            lambda: [0, 0, 0, 0.0]
        )
        self._day = ""
        self._day_ends = 0.0  # the current UTC day's name, worked out once a day

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

    async def flush(self) -> None:
        pending, self._pending = self._pending, defaultdict(lambda: [0, 0, 0, 0.0])
        if pending:
            rows = [
                UsageRow(day, key, model, int(requests), int(prompt), int(completion), cost)
                for (day, key, model), (requests, prompt, completion, cost) in pending.items()
            ]
            await self.store.add_usage(rows)


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
