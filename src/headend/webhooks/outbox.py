"""What a background response's end tells the configured endpoints: OpenAI's event shape,
one outbox row per endpoint that wants it (written with the run's end, so a restart loses
none)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from headend.config import WebhookSettings
from headend.store.base import WebhookDelivery
from headend.types import Json

# a background response's status when it ends -> the event that says so
ENDING_EVENTS = {
    "completed": "response.completed",
    "failed": "response.failed",
    "cancelled": "response.cancelled",
    "incomplete": "response.incomplete",
}


def ending_deliveries(
    response_id: str, status: str, endpoints: Sequence[WebhookSettings]
) -> tuple[WebhookDelivery, ...]:
    """The deliveries a response ending with ``status`` makes: one event, for each endpoint
    that wants it."""
    kind = ENDING_EVENTS.get(status)
    wanting = [endpoint for endpoint in endpoints if kind is not None and endpoint.wants(kind)]
    if kind is None or not wanting:
        return ()
    now = time.time()
    event: Json = {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": kind,
        "created_at": int(now),
        "data": {"id": response_id},
    }
    return tuple(
        WebhookDelivery(
            id=f"whd_{uuid.uuid4().hex}",
            event_id=event["id"],
            endpoint=endpoint.url,
            event_type=kind,
            payload=event,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for endpoint in wanting
    )
