"""The SQL of background runs, shared by both stores (``?`` placeholders; PostgreSQL's store
numbers them), and their rows."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson

from headend.errors import LeaseLost
from headend.store.base import (
    TERMINAL_STATUSES,
    BackgroundProgress,
    BackgroundRun,
    ClaimedRun,
    RunStep,
)

# A response saved again (a background one, once finished) replaces its object and turn.
SAVE_RESPONSE_SQL = (
    "INSERT INTO responses (id, owner, session_id, turn, created_at, body, input_items) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET session_id = "
    "excluded.session_id, turn = excluded.turn, body = excluded.body, "
    "input_items = excluded.input_items"
)
BACKGROUND_COLUMNS = "id, owner, status, cancel_requested, created_at, updated_at"
# (m020's partial index of unfinished runs has this very predicate)
_UNFINISHED = "status NOT IN (" + ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES)) + ")"

CREATE_BACKGROUND_SQL = (
    f"INSERT INTO background_runs ({BACKGROUND_COLUMNS}, resume) "
    "VALUES (?, ?, 'queued', ?, ?, ?, ?)"
)
_THE_OWNERS = "id = ? AND owner IS NOT DISTINCT FROM ?"
_READ = f"SELECT {BACKGROUND_COLUMNS}, attempt FROM background_runs"
BACKGROUND_SQL = f"{_READ} WHERE {_THE_OWNERS}"
# for operators: every owner's
ANY_BACKGROUND_SQL = f"{_READ} WHERE id = ?"
LIST_BACKGROUND_SQL = (
    f"{_READ} WHERE (CAST(? AS TEXT) IS NULL OR status = ?) ORDER BY created_at DESC, id DESC "
    "LIMIT ?"
)
# Events are appended whatever the run's state (a run's last events follow its cancelling);
# its object and status change only while it has not finished: a cancelled run stays so.
# (written again after a write whose end was not seen: the first one stands)
ADD_EVENT_SQL = (
    "INSERT INTO response_events (response_id, seq, event) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
)
PROGRESS_SQL = (
    f"UPDATE background_runs SET status = ?, updated_at = ? WHERE id = ? AND {_UNFINISHED} "
    "AND attempt = ? RETURNING cancel_requested"
)
# why a progress write changed nothing: the run finished, or another instance claimed it
NOT_WRITTEN_SQL = "SELECT attempt, cancel_requested FROM background_runs WHERE id = ?"
ADD_STEP_SQL = (
    "INSERT INTO run_steps (response_id, step, attempt, kind, data, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
STEPS_SQL = (
    "SELECT step, kind, data, attempt, created_at FROM run_steps WHERE response_id = ? "
    "ORDER BY step"
)
PROGRESS_BODY_SQL = "UPDATE responses SET body = ? WHERE id = ?"
EVENTS_SQL = (
    "SELECT event FROM response_events WHERE response_id = ? AND seq > ? ORDER BY seq LIMIT ?"
)
REQUEST_CANCEL_SQL = (
    f"UPDATE background_runs SET cancel_requested = ? WHERE {_THE_OWNERS} AND {_UNFINISHED}"
)


# A run's progress writes (at least each second) keep its updated_at fresh: one older than
# the lease was left by an instance that stopped. Claiming it numbers a new attempt, which
# fences the old one's writes off. PostgreSQL's claimers skip the rows another is claiming
# ({lock}: FOR UPDATE SKIP LOCKED); SQLite has one writer at a time.
CLAIM_STALE_SQL = (
    "UPDATE background_runs SET attempt = attempt + 1, updated_at = ? WHERE id IN ("
    f"SELECT id FROM background_runs WHERE {_UNFINISHED} AND updated_at < ? "
    "ORDER BY updated_at LIMIT ?{lock}) RETURNING id, owner, attempt, resume"
)
LAST_EVENT_SQL = "SELECT max(seq) FROM response_events WHERE response_id = ?"
UNFINISHED_SQL = (
    f"SELECT count(*) FROM background_runs WHERE owner IS NOT DISTINCT FROM ? AND {_UNFINISHED}"
)


def background_run(row: Sequence[Any]) -> BackgroundRun:
    id_, owner, status, cancel_requested, created_at, updated_at, attempt = row
    return BackgroundRun(
        id_, owner, status, bool(cancel_requested), created_at, updated_at, int(attempt)
    )


def claimed_run(row: Sequence[Any]) -> ClaimedRun:
    id_, owner, attempt, resume = row
    return ClaimedRun(id_, owner, int(attempt), orjson.loads(resume) if resume else None)


def run_step(row: Sequence[Any]) -> RunStep:
    number, kind, data, attempt, created_at = row
    return RunStep(int(number), kind, orjson.loads(data), int(attempt), created_at)


def step_rows(progress: BackgroundProgress) -> list[tuple[str, int, int, str, str, float]]:
    return [
        (
            progress.response_id,
            step.number,
            step.attempt,
            step.kind,
            orjson.dumps(step.data).decode(),
            step.created_at,
        )
        for step in progress.steps
    ]


def written_at(progress: BackgroundProgress) -> float:
    """The run's updated_at: now, or long ago for a run handed off (claimable at once)."""
    return 0.0 if progress.released else time.time()


def check_not_written(progress: BackgroundProgress, row: Sequence[Any] | None) -> bool:
    """After a progress write that changed nothing: whether its owner asked to cancel the
    (finished) run, or ``LeaseLost`` when another instance has claimed it since."""
    if row is None or int(row[0]) != progress.attempt:
        raise LeaseLost(f"background response {progress.response_id} was claimed by another")
    return bool(row[1])


def event_rows(progress: BackgroundProgress) -> list[tuple[str, int, str]]:
    return [
        (progress.response_id, progress.first + n, orjson.dumps(event).decode())
        for n, event in enumerate(progress.events)
    ]
