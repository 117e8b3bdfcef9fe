"""What one request did, as the metrics see it: its surface, model, status and timings.

``RequestContextMiddleware`` fills a ``RequestContext`` as the answer goes out and hands
it here when the answer is done; nothing on the request's path waits for this.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from headend.errors import RateLimited
from headend.observability.metrics import Metrics

if TYPE_CHECKING:
    from headend.server.context import RequestContext

# The API surface a path belongs to: a fixed set of words, whatever the path was.
EXACT = {
    "/v1/chat/completions": "chat_completions",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
    "/v1/messages/count_tokens": "count_tokens",
    "/v1/models": "models",
    "/health": "health",
    "/health/ready": "health",
    "/metrics": "metrics",
}
PREFIXES = (
    ("/v1/responses/", "responses"),
    ("/v1/models/", "models"),
    ("/v1/sessions", "sessions"),
    ("/admin/", "admin"),
    ("/console", "console"),
    ("/widget", "widget"),
)
OTHER = "other"


def surface_of(path: str) -> str:
    found = EXACT.get(path)
    if found is not None:
        return found
    for prefix, surface in PREFIXES:
        if path.startswith(prefix):
            return surface
    return OTHER


class RequestObserver:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def stream_started(self, context: RequestContext) -> None:
        self.metrics.open_streams.labels(context.surface).inc()

    def finished(self, context: RequestContext) -> None:
        metrics, surface, model = self.metrics, context.surface, context.model or ""
        timer = context.timer
        elapsed = time.perf_counter() - timer.started
        metrics.requests.labels(surface, model, str(context.status)).inc()
        metrics.duration.labels(surface, model).observe(elapsed)
        metrics.overhead.labels(surface).observe(max(elapsed - timer.upstream, 0.0))
        if context.first_event is not None:
            metrics.first_token.labels(surface, model).observe(context.first_event - timer.started)
        if context.streaming:
            metrics.open_streams.labels(surface).dec()
        if isinstance(context.error, RateLimited):
            metrics.refused.labels(context.error.type).inc()
