"""Usage is counted under the UTC day it happened on, across midnight too."""

from __future__ import annotations

import time

import pytest

from headend.runs.usage import UsageMeter
from headend.store.base import UsageRow


class Rows:
    def __init__(self) -> None:
        self.rows: list[UsageRow] = []

    async def add_usage(self, rows: list[UsageRow]) -> None:
        self.rows.extend(rows)


MIDNIGHT = 1_795_478_400.0  # 2026-11-24T00:00:00Z


async def test_requests_either_side_of_midnight_count_on_their_own_days(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = Rows()
    meter = UsageMeter(store)  # type: ignore[arg-type]
    for at, tokens in ((MIDNIGHT - 1, 3), (MIDNIGHT - 0.5, 4), (MIDNIGHT, 10), (MIDNIGHT - 2, 1)):
        monkeypatch.setattr(time, "time", lambda at=at: at)
        meter.add("key", "model", {"prompt_tokens": tokens, "completion_tokens": 0}, tokens / 8)
    await meter.flush()
    by_day = {row.day: (row.requests, row.prompt_tokens, row.cost) for row in store.rows}
    # The last request's clock went back before midnight: it counts on that day again.
    assert by_day == {"2026-11-23": (3, 8, 1.0), "2026-11-24": (1, 10, 1.25)}
