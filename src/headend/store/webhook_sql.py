"""The SQL of the webhook outbox, shared by both stores (``?`` placeholders), and its rows."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson

from headend.store.base import DeliveryOutcome, WebhookDelivery

DELIVERY_COLUMNS = (
    "id, event_id, endpoint, event_type, payload, status, attempts, next_attempt_at, "
    "created_at, last_status, last_error, updated_at"
)
ADD_DELIVERY_SQL = (
    f"INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# ``{lock}``: PostgreSQL's FOR UPDATE SKIP LOCKED, so instances claiming at once take
# different rows; SQLite has one writer and needs none.
CLAIM_DELIVERIES_SQL = (
    "UPDATE webhook_deliveries SET lease_holder = ?, lease_until = ? WHERE id IN ("
    "SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ? "
    "AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_attempt_at LIMIT ?{lock}) "
    f"RETURNING {DELIVERY_COLUMNS}"
)
RECORD_DELIVERY_SQL = (
    "UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, "
    "last_status = ?, last_error = ?, updated_at = ?, lease_holder = NULL, lease_until = NULL "
    "WHERE id = ? AND lease_holder = ?"
)
DELIVERIES_SQL = (
    f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries "
    "WHERE (CAST(? AS TEXT) IS NULL OR status = ?) ORDER BY created_at DESC, id DESC LIMIT ?"
)
PRUNE_DELIVERIES_SQL = "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND updated_at < ?"


def delivery_values(delivery: WebhookDelivery) -> tuple[Any, ...]:
    return (
        delivery.id,
        delivery.event_id,
        delivery.endpoint,
        delivery.event_type,
        orjson.dumps(delivery.payload).decode(),
        delivery.status,
        delivery.attempts,
        delivery.next_attempt_at,
        delivery.created_at,
        delivery.last_status,
        delivery.last_error,
        delivery.updated_at if delivery.updated_at is not None else delivery.created_at,
    )


def outcome_values(delivery_id: str, holder: str, outcome: DeliveryOutcome) -> tuple[Any, ...]:
    return (
        outcome.status,
        outcome.attempts,
        outcome.next_attempt_at,
        outcome.last_status,
        outcome.last_error,
        time.time(),
        delivery_id,
        holder,
    )


def webhook_delivery(row: Sequence[Any]) -> WebhookDelivery:
    (id_, event_id, endpoint, kind, payload, status, attempts, due, created, code, error, at) = row
    return WebhookDelivery(
        id_,
        event_id,
        endpoint,
        kind,
        orjson.loads(payload),
        status,
        attempts,
        due,
        created,
        code,
        error,
        at,
    )
