"""One request's record as it goes, and where it is kept: ``scope["state"]``.

The middleware (``server.context``) makes it; the auth middleware, the routes and the run
(through ``runs.record.RunRecord``) fill it in; the observer (``server.observer``) reports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.types import Scope

from headend.errors import APIError
from headend.observability.tracing import UNTRACED, Span
from headend.providers.base import Timer

STATE_KEY = "headend"


@dataclass(slots=True)
class RequestContext:
    """One request as it goes: set by the middleware, the routes and the error handlers."""

    request_id: str
    surface: str = "other"
    timer: Timer = field(default_factory=Timer)
    model: str | None = None  # a configured agent's or route's name, once the request names one
    status: int = 0
    streaming: bool = False  # an event stream
    first_event: float | None = None  # perf_counter when a stream's first event went out
    error: APIError | None = None  # what the request was refused or failed with
    key_id: str | None = None  # the caller's key, once authenticated
    tokens: tuple[int, int] | None = None  # prompt and completion tokens charged
    span: Span = UNTRACED  # the request's span: agent runs and model calls go under it


def request_context(request: Request) -> RequestContext:
    found: RequestContext = request.scope["state"][STATE_KEY]
    return found


def context_of(scope: Scope) -> RequestContext | None:
    """The request's context, where the middleware made one."""
    found: RequestContext | None = scope.get("state", {}).get(STATE_KEY)
    return found
