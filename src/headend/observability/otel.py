"""Tracing through the OpenTelemetry SDK (``pip install 'headend[otel]'``), set up from the
standard variables: ``OTEL_EXPORTER_OTLP_*`` (OTLP over HTTP/protobuf),
``OTEL_TRACES_EXPORTER`` (``otlp`` or ``console``), ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER*`` and ``OTEL_BSP_*``, which the SDK
reads itself. Prompts and answers are recorded only with
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``.

The tracer provider is headend's own, not OpenTelemetry's global one: several apps in one
process (the tests) each keep theirs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from headend import __version__
from headend.errors import ConfigError
from headend.observability.tracing import TRUE, Attributes, Kind, Span, trace_context

KINDS = {"server": SpanKind.SERVER, "client": SpanKind.CLIENT, "internal": SpanKind.INTERNAL}
PROPAGATOR = TraceContextTextMapPropagator()


class OtelSpan:
    recording = True
    __slots__ = ("_span", "_tracer", "capture")

    def __init__(self, tracer: trace.Tracer, span: trace.Span, capture: bool) -> None:
        self._tracer = tracer
        self._span = span
        self.capture = capture

    def child(self, name: str, kind: Kind, attributes: Attributes) -> Span:
        parent = trace.set_span_in_context(self._span)
        span = self._tracer.start_span(name, parent, KINDS[kind], attributes)
        return OtelSpan(self._tracer, span, self.capture)

    def set(self, attributes: Attributes) -> None:
        self._span.set_attributes(attributes)

    def fail(self, error_type: str, message: str = "") -> None:
        self._span.set_attribute("error.type", error_type)
        self._span.set_status(Status(StatusCode.ERROR, message or None))

    def end(self) -> None:
        self._span.end()

    def headers(self) -> dict[str, str]:
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier, trace.set_span_in_context(self._span))
        return carrier


def exporter(environ: Mapping[str, str]) -> SpanExporter:
    name = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if name == "console":
        return ConsoleSpanExporter()
    if name != "otlp":
        raise ConfigError([f"OTEL_TRACES_EXPORTER={name}: headend exports 'otlp' or 'console'"])
    protocol = environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    )
    if protocol.strip().lower() not in ("", "http/protobuf"):
        raise ConfigError(
            [
                f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: headend sends OTLP over HTTP "
                "(http/protobuf, a collector's port 4318)"
            ]
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_* itself


def resource(environ: Mapping[str, str]) -> Resource:
    """The SDK's resource from the variables, named ``headend`` unless they name it."""
    named = "OTEL_SERVICE_NAME" in environ or "service.name=" in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    attributes = {"service.version": __version__}
    if not named:
        attributes["service.name"] = "headend"
    return Resource.create(attributes)


class OtelTracing:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.capture_content = (
            environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "").lower() in TRUE
        )
        self._provider = TracerProvider(resource=resource(environ))
        self._provider.add_span_processor(BatchSpanProcessor(exporter(environ)))
        self._tracer = self._provider.get_tracer("headend", __version__)

    def request(
        self,
        method: str,
        path: str,
        raw_headers: Sequence[tuple[bytes, bytes]],
        request_id: str,
        fixed: bool = False,
    ) -> Span:
        # ``{method} {route}``: the path when it is one of the API's ``fixed`` ones, else the
        # method alone (paths with ids in them would make every span name different).
        name = f"{method} {path}" if fixed else method
        attributes = {
            "http.request.method": method,
            "url.path": path,
            "headend.request_id": request_id,
        }
        parent = PROPAGATOR.extract(trace_context(raw_headers))
        span = self._tracer.start_span(name, parent, SpanKind.SERVER, attributes)
        return OtelSpan(self._tracer, span, self.capture_content)

    def close(self) -> None:
        self._provider.shutdown()  # flushes what the batch processor holds
