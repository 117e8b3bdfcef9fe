"""What a run is told of its request, and tells back.

The HTTP side keeps one record per request (``server.context.RequestContext``): its id, its
timer and span, and what the access line and the metrics report. A run reads the first three
and writes back the model it ran (a configured name, so metrics may label by it) and the
tokens it charged; it knows the record only by this protocol, so runs/ never imports the
server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from headend.observability.tracing import UNTRACED, Span
from headend.providers.base import Timer


class RunRecord(Protocol):
    request_id: str
    timer: Timer
    span: Span
    model: str | None  # set by the run: the agent's id or the route's name
    tokens: tuple[int, int] | None  # set by the run: prompt and completion tokens charged


@dataclass(slots=True)
class OwnRecord:
    """The record of a run that no request made (a schedule's)."""

    request_id: str
    timer: Timer = field(default_factory=Timer)
    span: Span = UNTRACED
    model: str | None = None
    tokens: tuple[int, int] | None = None
