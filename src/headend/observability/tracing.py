"""Traces: what headend's code sees of spans, whether OpenTelemetry is on or not.

Tracing is on when the standard ``OTEL_*`` variables ask for an exporter (see ``wanted``) and
off otherwise; off, nothing of OpenTelemetry is imported and a span is ``Untraced``, which
costs nothing and still hands a client's W3C ``traceparent`` on to upstreams unchanged, so a
trace the client started is not broken by a gateway that does not record. Spans are passed
explicitly (a request's on its context, an agent run's on its ``Run``, a model call's on its
``ChatCall``), never through an ambient "current span", which async generators that yield
across tasks would tangle.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal, Protocol

from headend.errors import ConfigError

Kind = Literal["server", "client", "internal"]
AttributeValue = str | bool | int | float | Sequence[str]
Attributes = Mapping[str, AttributeValue]

_TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")
MAX_TRACESTATE = 512  # W3C: a vendor may drop it past this


class Span(Protocol):
    recording: bool  # False: attributes are thrown away, so skip computing them
    capture: bool  # record prompts, answers and tool arguments (off unless configured)

    def child(self, name: str, kind: Kind, attributes: Attributes) -> Span:
        """A span under this one (started now)."""
        ...

    def set(self, attributes: Attributes) -> None: ...

    def fail(self, error_type: str, message: str = "") -> None:
        """Mark the span failed (``error.type``, status ERROR)."""

    def end(self) -> None: ...

    def headers(self) -> dict[str, str]:
        """The W3C trace context to send with a call made under this span."""
        ...


class Untraced:
    """A span when tracing is off: carries the client's trace context, records nothing."""

    recording = False
    capture = False
    __slots__ = ("_headers",)

    def __init__(self, headers: dict[str, str] | None = None) -> None:
        self._headers = headers or {}

    def child(self, name: str, kind: Kind, attributes: Attributes) -> Span:
        return self

    def set(self, attributes: Attributes) -> None:
        pass

    def fail(self, error_type: str, message: str = "") -> None:
        pass

    def end(self) -> None:
        pass

    def headers(self) -> dict[str, str]:
        return self._headers


UNTRACED = Untraced()


def trace_context(raw: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    """A request's valid W3C ``traceparent`` (and its ``tracestate``), or nothing."""
    found: dict[str, str] = {}
    for name, value in raw:
        if name == b"traceparent" or name == b"tracestate":
            found[name.decode()] = value.decode("latin-1").strip()
    parent = found.get("traceparent", "").lower()
    if not _TRACEPARENT.match(parent):
        return {}
    context = {"traceparent": parent}
    state = found.get("tracestate")
    if state and len(state) <= MAX_TRACESTATE:
        context["tracestate"] = state
    return context


class Tracing(Protocol):
    def request(
        self,
        method: str,
        path: str,
        raw_headers: Sequence[tuple[bytes, bytes]],
        request_id: str,
        fixed: bool = False,
    ) -> Span:
        """A request's span, under the client's trace when it sent one (off: only the
        client's trace context, to pass on; nothing built per request beyond that);
        ``fixed``: its path is one of the API's own, so it may name the span."""
        ...

    def close(self) -> None:
        """Send what is still buffered."""


class TracingOff:
    def request(
        self,
        method: str,
        path: str,
        raw_headers: Sequence[tuple[bytes, bytes]],
        request_id: str,
        fixed: bool = False,
    ) -> Span:
        for header, _ in raw_headers:
            if header == b"traceparent":
                return Untraced(trace_context(raw_headers))
        return UNTRACED

    def close(self) -> None:
        pass


TRUE = ("true", "1", "yes", "on")


def wanted(environ: Mapping[str, str]) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces: an OTLP endpoint is set, or an
    exporter named; never when ``OTEL_SDK_DISABLED`` or ``OTEL_TRACES_EXPORTER=none``."""
    if environ.get("OTEL_SDK_DISABLED", "").lower() in TRUE:
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(
        exporter
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def tracing_from_env(environ: Mapping[str, str]) -> Tracing:
    if not wanted(environ):
        return TracingOff()
    try:
        from headend.observability.otel import OtelTracing
    except ModuleNotFoundError as exc:
        raise ConfigError(
            [
                "OTEL_* variables ask for traces, which need OpenTelemetry: "
                "pip install 'headend[otel]'"
            ]
        ) from exc
    return OtelTracing(environ)
