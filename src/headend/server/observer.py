"""What one request did, as the metrics see it: its surface, model, status and timings.

``RequestContextMiddleware`` fills a ``RequestContext`` as the answer goes out and hands
it here when the answer is done; nothing on the request's path waits for this.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from headend.errors import BudgetSpent, RateLimited
from headend.observability.access_log import AccessLog
from headend.observability.metrics import Metrics

if TYPE_CHECKING:
    from starlette.types import Scope

    from headend.server.request_record import RequestContext

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
    "/mcp": "mcp",
}
PREFIXES = (
    ("/v1/responses/", "responses"),
    ("/v1/models/", "models"),
    ("/v1/sessions", "sessions"),
    ("/v1/files", "files"),
    ("/v1/vector_stores", "vector_stores"),
    ("/admin/", "admin"),
    ("/console", "console"),
    ("/widget", "widget"),
    ("/a2a", "a2a"),
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
    """Counts each request in the metrics and writes its line to ``access_log`` (None: the
    access log is off)."""

    def __init__(self, metrics: Metrics, *, access_log: AccessLog | None = None) -> None:
        self.metrics = metrics
        self.access_log = access_log

    def stream_started(self, context: RequestContext) -> None:
        self.metrics.child(self.metrics.open_streams, context.surface).inc()

    def finished(self, context: RequestContext, scope: Scope) -> None:
        metrics, surface, model = self.metrics, context.surface, context.model or ""
        timer = context.timer
        elapsed = time.perf_counter() - timer.started
        overhead = max(elapsed - timer.upstream, 0.0)
        child = metrics.child
        child(metrics.requests, surface, model, str(context.status)).inc()
        child(metrics.duration, surface, model).observe(elapsed)
        child(metrics.overhead, surface).observe(overhead)
        if context.first_event is not None:
            child(metrics.first_token, surface, model).observe(context.first_event - timer.started)
        if context.streaming:
            child(metrics.open_streams, surface).dec()
        if isinstance(context.error, RateLimited | BudgetSpent):
            metrics.refused.labels(context.error.type).inc()
        if self.access_log is not None:
            self._log(self.access_log, context, scope, elapsed, overhead)
        span = context.span
        if span.recording:
            attributes: dict[str, str | int] = {"http.response.status_code": context.status}
            if model:
                attributes["headend.model"] = model
            if context.key_id is not None:
                attributes["headend.key_id"] = context.key_id
            span.set(attributes)
            if context.error is not None and context.status >= 500:
                span.fail(context.error.code or context.error.type, context.error.message)
            elif context.status >= 500:
                span.fail(str(context.status))
            span.end()

    @staticmethod
    def _log(
        access_log: AccessLog,
        context: RequestContext,
        scope: Scope,
        elapsed: float,
        overhead: float,
    ) -> None:
        """The access line: who, what, how it ended, how long; never a secret or a body."""
        method, path = scope["method"], scope["path"]
        fields: dict[str, Any] = {
            "request_id": context.request_id,
            "method": method,
            "path": path,
            "status": context.status,
            "surface": context.surface,
            "model": context.model,
            "key_id": context.key_id,
            "duration_ms": round(elapsed * 1000, 2),
            "overhead_ms": round(overhead * 1000, 3),
        }
        tokens = ""
        if context.tokens is not None:
            fields["prompt_tokens"], fields["completion_tokens"] = context.tokens
            tokens = f" tokens={context.tokens[0]}+{context.tokens[1]}"
        if context.error is not None:
            fields["error"] = context.error.code or context.error.type
        access_log.write(
            fields,
            f"{context.request_id} {method} {path} {context.status} "
            f"model={context.model or '-'} key={context.key_id or '-'}{tokens} "
            f"{elapsed * 1000:.1f}ms overhead={overhead * 1000:.2f}ms",
        )
