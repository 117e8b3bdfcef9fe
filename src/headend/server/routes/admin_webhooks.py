"""``GET /admin/webhooks/deliveries``: the webhook outbox, newest first (admin scope), so an
operator sees what was delivered, what waits for its next try and what was given up on."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from yarl import URL

from headend.schemas.webhooks_api import DeliveryList, DeliveryShape
from headend.server.json_bodies import json_response
from headend.server.query import query_choice, query_whole
from headend.server.services import services
from headend.store.base import WebhookDelivery

MOST = 500
STATUSES = ("pending", "delivered", "failed")


async def list_deliveries(request: Request) -> Response:
    """``?status=pending|delivered|failed&limit=50``."""
    status = query_choice(request, "status", STATUSES)
    limit = query_whole(request, "limit", 1, MOST) or 50
    found = await services(request).store.deliveries(status, limit)
    return json_response(DeliveryList(data=[delivery_shape(d) for d in found]))


def delivery_shape(delivery: WebhookDelivery) -> DeliveryShape:
    url = URL(delivery.endpoint)
    data = delivery.payload.get("data")
    return DeliveryShape(
        id=delivery.id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        response_id=data.get("id") if isinstance(data, dict) else None,
        endpoint=str(url.with_query(None).with_fragment(None)),
        status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
        last_status=delivery.last_status,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        updated_at=delivery.updated_at,
        event=delivery.payload,
    )
