"""Wire shapes of ``GET /admin/webhooks/deliveries``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class DeliveryShape(BaseModel):
    object: Literal["webhook.delivery"] = "webhook.delivery"
    id: str
    event_id: str  # the webhook-id header the endpoint saw
    event_type: str  # response.completed…
    response_id: str | None
    endpoint: str  # scheme, host and path (a query string is left out: it may hold a token)
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: float | None  # a pending one's next try (Unix time)
    last_status: int | None  # the endpoint's HTTP status, last attempt
    last_error: str | None
    created_at: float
    updated_at: float | None
    event: dict[str, Any]  # the body as sent


class DeliveryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[DeliveryShape]  # newest first
