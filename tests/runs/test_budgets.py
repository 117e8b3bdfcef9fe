"""What a key spent in its period: the store's rows (every instance's) plus this instance's
cost not written yet, each counted once however writes and reads interleave."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from headend.errors import BudgetSpent, ServiceUnavailable
from headend.limits.budget import Budget
from headend.runs import budgets
from headend.runs.budgets import BudgetBook
from headend.runs.usage import UsageMeter, utc_day
from headend.store.base import UsageRow
from headend.store.sqlite import SqliteStore

USAGE = {"prompt_tokens": 5, "completion_tokens": 7}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    found = SqliteStore(tmp_path / "b.db")
    await found.start()
    yield found
    await found.close()


def today() -> str:
    return utc_day(time.time())


async def test_spend_counts_at_once_and_once_across_writes(store: SqliteStore) -> None:
    meter = UsageMeter(store)
    book = BudgetBook(store, meter)
    assert await book.spent("key_1", today()) == 0
    meter.add("key_1", "gpt", USAGE, 0.25)
    meter.add("key_2", "gpt", USAGE, 100.0)  # another key's
    assert await book.spent("key_1", today()) == 0.25  # not written yet, counted already
    await meter.flush()
    assert await book.spent("key_1", today()) == 0.25  # written: counted once
    meter.add("key_1", "gpt", USAGE, 0.5)
    assert await book.spent("key_1", today()) == 0.75
    assert await book.spent("key_1", "2999-01-01") == 0  # a later period's start


async def test_a_read_waits_for_a_write_under_way(store: SqliteStore) -> None:
    meter = UsageMeter(store)
    book = BudgetBook(store, meter)
    meter.add("key_1", "gpt", USAGE, 1.0)
    async with meter.writing:  # a batch half way to the store: neither here nor there
        flushing = asyncio.create_task(meter.flush())
        reading = asyncio.create_task(book.spent("key_1", today()))
        await asyncio.sleep(0.05)
        assert not reading.done()
    await flushing
    assert await reading == 1.0


async def test_another_instances_spend_counts_within_the_refresh(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = BudgetBook(store, UsageMeter(store))
    assert await book.spent("key_1", today()) == 0
    await store.add_usage([UsageRow(today(), "key_1", "gpt", 1, 5, 7, 2.0)])  # elsewhere
    assert await book.spent("key_1", today()) == 0  # trusted for a moment
    monkeypatch.setattr(budgets, "REFRESH", 0.0)
    assert await book.spent("key_1", today()) == 0  # read again meanwhile, not waited for
    await asyncio.sleep(0.1)
    assert await book.spent("key_1", today()) == 2.0


async def test_a_store_that_does_not_answer(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    meter = UsageMeter(store)
    book = BudgetBook(store, meter)

    async def down(key_id: str, since_day: str) -> float:
        raise ConnectionError("store away")

    meter.add("key_1", "gpt", USAGE, 0.5)
    assert await book.spent("key_1", today()) == 0.5
    monkeypatch.setattr(store, "spent", down)
    monkeypatch.setattr(budgets, "REFRESH", 0.0)
    meter.add("key_1", "gpt", USAGE, 0.25)
    # A key already read goes on with what others spent as last read, and its own spend.
    assert await book.spent("key_1", today()) == 0.75
    await asyncio.sleep(0.1)
    assert await book.spent("key_1", today()) == 0.75
    # A key never read cannot be checked: 503, not a guess.
    with pytest.raises(ServiceUnavailable):
        await book.check("key_2", Budget(1.0, "day"))


async def test_a_failed_write_keeps_the_counts_for_the_next(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    meter = UsageMeter(store)
    book = BudgetBook(store, meter)
    meter.add("key_1", "gpt", USAGE, 1.5)

    async def down(rows: list[UsageRow]) -> None:
        raise ConnectionError("store away")

    monkeypatch.setattr(store, "add_usage", down)
    with pytest.raises(ConnectionError):
        await meter.flush()
    assert await book.spent("key_1", today()) == 1.5
    monkeypatch.undo()
    meter.add("key_1", "gpt", USAGE, 0.5)
    await meter.flush()
    [row] = await store.usage(today())
    assert (row.requests, row.prompt_tokens, row.cost) == (2, 10, 2.0)
    assert await book.spent("key_1", today()) == 2.0


async def test_a_key_is_refused_once_its_spend_reaches_its_budget(store: SqliteStore) -> None:
    meter = UsageMeter(store)
    book = BudgetBook(store, meter)
    budget = Budget(1.0, "day")
    assert await book.check("key_1", budget) == {"x-headend-budget-remaining": "1"}
    assert await book.check("key_1", None) == {}  # no budget: no header
    meter.add("key_1", "gpt", USAGE, 0.75)
    assert await book.check("key_1", budget) == {"x-headend-budget-remaining": "0.25"}
    meter.add("key_1", "gpt", USAGE, 0.25)
    with pytest.raises(BudgetSpent) as spent:
        await book.check("key_1", budget)
    assert spent.value.status == 429
    assert spent.value.code == spent.value.type == "insufficient_quota"
    assert spent.value.headers == {"x-headend-budget-remaining": "0", "x-should-retry": "false"}
    window = budget.window(time.time())
    assert f"spent (1 since {window.first_day}). It resets at {window.resets}." in str(spent.value)


async def test_the_period_changes_at_its_reset(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = BudgetBook(store, UsageMeter(store))
    budget = Budget(1.0, "day")
    midnight = 1_795_478_400.0  # 2026-11-24T00:00:00Z
    before = book.window(budget, midnight - 1)
    assert before is book.window(budget, midnight - 0.5)  # worked out once
    after = book.window(budget, midnight)
    assert (before.first_day, after.first_day) == ("2026-11-23", "2026-11-24")
    await store.add_usage([UsageRow("2026-11-23", "key_1", "gpt", 1, 5, 7, 1.0)])
    monkeypatch.setattr(time, "time", lambda: midnight - 1)
    with pytest.raises(BudgetSpent):
        await book.check("key_1", budget)
    monkeypatch.setattr(time, "time", lambda: midnight + 1)
    assert await book.check("key_1", budget) == {"x-headend-budget-remaining": "1"}


async def test_two_instances_on_one_store_each_count_both(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = UsageMeter(store), UsageMeter(store)
    book_one, book_two = BudgetBook(store, one), BudgetBook(store, two)
    one.add("key_1", "gpt", USAGE, 0.5)
    await one.flush()
    one.add("key_1", "gpt", USAGE, 0.125)  # not written yet: only one knows it
    two.add("key_1", "gpt", USAGE, 0.25)
    assert await book_one.spent("key_1", today()) == 0.625
    assert await book_two.spent("key_1", today()) == 0.75  # one's written part, and its own
    await one.flush()
    await two.flush()
    monkeypatch.setattr(budgets, "REFRESH", 0.0)
    for book in (book_one, book_two):
        await book.spent("key_1", today())  # starts the read
        await asyncio.sleep(0.1)
        assert await book.spent("key_1", today()) == 0.875
