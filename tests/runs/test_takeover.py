"""Taking a run up after a crash, on a real store: a run that cannot go on for now is left to
be tried again when its claim lapses; one that never will (or has been tried enough) ends as
failed, with why."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from headend.access.authenticator import Authenticator
from headend.errors import InvalidKey, RateLimited
from headend.runs.background import BackgroundRuns
from headend.runs.takeover import MOST_TAKEOVERS, RunTakeover
from headend.store.base import ResponseRecord
from headend.store.sqlite import SqliteStore

RESUME = {"caller": {"key_id": None, "visitor": None}, "model": "gpt", "request": {}, "items": []}


class Refusing:
    """Response runs whose restart fails with ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def restart(self, *args: object) -> None:
        raise self.error


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    found = SqliteStore(tmp_path / "h.db")
    await found.start()
    body = {"id": "resp_t", "status": "in_progress", "output": []}
    await found.create_background_run(
        ResponseRecord("resp_t", None, None, None, 1.0, body, []), 1.0, RESUME
    )
    yield found
    await found.close()


async def take_up(store: SqliteStore, error: Exception, attempt: int) -> str:
    background = BackgroundRuns(store, cast(Any, None))
    takeover = RunTakeover(
        store, background, cast(Any, Refusing(error)), Authenticator(store, None)
    )
    claimed = None
    while claimed is None or claimed.attempt < attempt:  # as instances claim it, in turn
        (claimed,) = await store.claim_stale_runs(time.time() + 60, time.time(), 1)
    await takeover._take_up(claimed)
    record = await store.get_response("resp_t", None)
    assert record is not None
    status: str = record.body["status"]
    return status


@pytest.mark.parametrize(
    "error",
    [OSError("the store is away"), RateLimited("full", kind="concurrency", headers={})],
    ids=["store away", "limit full"],
)
async def test_a_run_that_cannot_go_on_for_now_is_left_to_be_tried_again(
    store: SqliteStore, error: Exception
) -> None:
    assert await take_up(store, error, 1) == "in_progress"
    assert await take_up(store, error, MOST_TAKEOVERS) == "failed"  # tried enough


async def test_a_run_that_never_will_go_on_ends_as_failed_at_once(store: SqliteStore) -> None:
    assert await take_up(store, InvalidKey("revoked"), 1) == "failed"
    record = await store.get_response("resp_t", None)
    assert record is not None
    assert "revoked" in record.body["error"]["message"]
