"""Who reads a scheduled run's response: an admin, a key with chat that may use its agent,
anyone while headend runs without keys; any other caller gets a 404, as for no such id."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from headend.access.principal import ADMIN, OPEN, Principal
from headend.runs.stored_responses import SCHEDULE_OWNER, ResponseNotFound, ResponseService
from headend.store.base import ResponseRecord
from headend.store.sqlite import SqliteStore

MINE = Principal("key_mine", frozenset({"chat"}))


READERS: list[tuple[Principal, bool]] = [
    (OPEN, True),  # no keys: anyone on this machine
    (ADMIN, True),
    (Principal("key_a", frozenset({"chat"}), frozenset({"digest"})), True),
    (Principal("key_b", frozenset({"chat"})), True),  # every agent
    (Principal("key_c", frozenset({"chat"}), frozenset({"other"})), False),
    (Principal("key_d", frozenset({"models:read"})), False),
    (Principal("key_e", frozenset({"chat"}), frozenset({"digest"}), visitor="v1"), False),
]


@pytest.mark.parametrize(("caller", "may"), READERS)
def test_a_scheduled_runs_readers(tmp_path: Path, caller: Principal, may: bool) -> None:
    async def go() -> None:
        store = SqliteStore(tmp_path / "h.db")
        await store.start()
        try:
            body = {"id": "resp_s", "model": "digest", "status": "completed", "output": []}
            await store.save_response(
                ResponseRecord("resp_s", SCHEDULE_OWNER, None, None, 1.0, body, [])
            )
            mine = {**body, "id": "resp_m"}
            await store.save_response(
                ResponseRecord("resp_m", "key_mine", None, None, 1.0, mine, [])
            )
            responses = ResponseService(store)
            if may:
                assert (await responses.readable("resp_s", caller)).body == body
            else:
                with pytest.raises(ResponseNotFound):
                    await responses.readable("resp_s", caller)
            assert (await responses.readable("resp_m", MINE)).id == "resp_m"
            if caller.key_id not in (None, "admin"):
                with pytest.raises(ResponseNotFound):  # another key's stays invisible
                    await responses.readable("resp_m", caller)
        finally:
            await store.close()

    asyncio.run(go())
