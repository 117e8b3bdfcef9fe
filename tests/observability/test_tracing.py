"""When tracing is on, and which client trace context headend takes and passes on."""

from __future__ import annotations

import pytest

from headend.errors import ConfigError
from headend.observability.tracing import TracingOff, trace_context, tracing_from_env, wanted

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_off_unless_the_variables_ask_for_an_exporter() -> None:
    assert not wanted({})
    assert not wanted({"OTEL_SERVICE_NAME": "headend"})  # naming a service exports nothing
    assert wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    assert wanted({"OTEL_TRACES_EXPORTER": "console"})
    assert not wanted({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"})
    assert not wanted({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"})
    assert isinstance(tracing_from_env({}), TracingOff)


def test_unsupported_exporters_are_refused_at_startup() -> None:
    for environ in (
        {"OTEL_TRACES_EXPORTER": "zipkin"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
    ):
        with pytest.raises(ConfigError):
            tracing_from_env(environ)


def test_only_a_valid_w3c_trace_context_is_taken() -> None:
    assert trace_context([(b"traceparent", VALID.encode())]) == {"traceparent": VALID}
    assert trace_context(
        [(b"tracestate", b"vendor=1"), (b"traceparent", VALID.upper().encode())]
    ) == {"traceparent": VALID, "tracestate": "vendor=1"}
    for bad in (
        b"00-not-a-trace",
        b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # an all-zero trace id
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ):
        assert trace_context([(b"traceparent", bad)]) == {}
    long_state = b"v=" + b"x" * 600
    assert "tracestate" not in trace_context(
        [(b"traceparent", VALID.encode()), (b"tracestate", long_state)]
    )
