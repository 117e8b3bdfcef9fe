"""The SQL of background runs, shared by both stores (``?`` placeholders; PostgreSQL's store
numbers them), and their rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from headend.store.base import TERMINAL_STATUSES, BackgroundProgress, BackgroundRun

# A response saved again (a background one, once finished) replaces its object and turn.
SAVE_RESPONSE_SQL = (
    "INSERT INTO responses (id, owner, session_id, turn, created_at, body, input_items) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET session_id = "
    "excluded.session_id, turn = excluded.turn, body = excluded.body, "
    "input_items = excluded.input_items"
)
BACKGROUND_COLUMNS = "id, owner, status, cancel_requested, created_at, updated_at"
_UNFINISHED = "status NOT IN (" + ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES)) + ")"

CREATE_BACKGROUND_SQL = (
    f"INSERT INTO background_runs ({BACKGROUND_COLUMNS}) VALUES (?, ?, 'queued', ?, ?, ?)"
)
_THE_OWNERS = "id = ? AND owner IS NOT DISTINCT FROM ?"
BACKGROUND_SQL = f"SELECT {BACKGROUND_COLUMNS} FROM background_runs WHERE {_THE_OWNERS}"
# Events are appended whatever the run's state (a run's last events follow its cancelling);
# its object and status change only while it has not finished: a cancelled run stays so.
# (written again after a write whose end was not seen: the first one stands)
ADD_EVENT_SQL = (
    "INSERT INTO response_events (response_id, seq, event) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
)
PROGRESS_SQL = (
    f"UPDATE background_runs SET status = ?, updated_at = ? WHERE id = ? AND {_UNFINISHED} "
    "RETURNING cancel_requested"
)
PROGRESS_BODY_SQL = "UPDATE responses SET body = ? WHERE id = ?"
CANCEL_REQUESTED_SQL = "SELECT cancel_requested FROM background_runs WHERE id = ?"
EVENTS_SQL = (
    "SELECT event FROM response_events WHERE response_id = ? AND seq > ? ORDER BY seq LIMIT ?"
)
REQUEST_CANCEL_SQL = (
    f"UPDATE background_runs SET cancel_requested = ? WHERE {_THE_OWNERS} AND {_UNFINISHED}"
)


# A run's progress writes (at least each second) keep its updated_at fresh: one older than
# the lease was left by an instance that stopped.
STALE_SQL = (
    f"SELECT id, owner FROM background_runs WHERE {_UNFINISHED} AND updated_at < ? "
    "ORDER BY updated_at LIMIT ?"
)
TAKE_STALE_SQL = (
    f"UPDATE background_runs SET updated_at = ? WHERE id = ? AND updated_at < ? AND {_UNFINISHED}"
)
LAST_EVENT_SQL = "SELECT max(seq) FROM response_events WHERE response_id = ?"
UNFINISHED_SQL = (
    f"SELECT count(*) FROM background_runs WHERE owner IS NOT DISTINCT FROM ? AND {_UNFINISHED}"
)


def background_run(row: Sequence[Any]) -> BackgroundRun:
    id_, owner, status, cancel_requested, created_at, updated_at = row
    return BackgroundRun(id_, owner, status, bool(cancel_requested), created_at, updated_at)


def event_rows(progress: BackgroundProgress) -> list[tuple[str, int, str]]:
    return [
        (progress.response_id, progress.first + n, orjson.dumps(event).decode())
        for n, event in enumerate(progress.events)
    ]
