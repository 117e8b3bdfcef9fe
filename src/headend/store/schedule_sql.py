"""The SQL of schedule fires, shared by both stores (``?`` placeholders), and its rows: a
fire is taken by inserting it, so of instances firing together one wins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from headend.store.base import ScheduleFire

CLAIM_FIRE_SQL = (
    "INSERT INTO schedule_fires (agent, entry, fire_at, fired_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING"
)
FIRE_STARTED_SQL = (
    "UPDATE schedule_fires SET response_id = ?, error = ? "
    "WHERE agent = ? AND entry = ? AND fire_at = ?"
)
RECENT_FIRES_SQL = (
    "SELECT f.agent, f.entry, f.fire_at, f.fired_at, f.response_id, b.status, f.error "
    "FROM schedule_fires f LEFT JOIN background_runs b ON b.id = f.response_id "
    "WHERE f.agent = ? ORDER BY f.fire_at DESC, f.entry LIMIT ?"
)
PRUNE_FIRES_SQL = "DELETE FROM schedule_fires WHERE fired_at < ?"


def schedule_fire(row: Sequence[Any]) -> ScheduleFire:
    agent, entry, fire_at, fired_at, response_id, status, error = row
    return ScheduleFire(agent, entry, fire_at, fired_at, response_id, status, error)
