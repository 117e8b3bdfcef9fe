"""OpenTelemetry traces, exported over OTLP/HTTP to a real collector on loopback: a request's
span under the client's ``traceparent``, an agent's ``invoke_agent`` with its model calls
(``chat``, a client span for an upstream, internal for the embedded model) and tool calls
(``execute_tool``) under it, the trace context handed to the upstream, and no prompt or
answer text unless asked for. Off, the client's ``traceparent`` still reaches the upstream."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import stop_server
from tests.e2e.sites import ADMIN, make_site, serve
from tests.otlp_collector import OtlpCollector, Span
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

QUESTION = "what-is-two-plus-two-8191"
ANSWER = "four-it-is-524287"
HELPER = "---\nmodel: gpt\ntools: [calculator]\n---\nYou add numbers.\n"
EMBEDDED = """
  tiny: {type: llama_cpp, n_ctx: 512}
"""
ADD = {"id": "call_add_1", "name": "calculator", "arguments": '{"expression": "2 + 2"}'}


@pytest.fixture
def collector() -> Iterator[OtlpCollector]:
    found = OtlpCollector().start()
    yield found
    found.stop()


def otel_env(collector: OtlpCollector, **extra: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        **extra,
    }


def traced_site(tmp_path: Path, upstream: FakeUpstream, prefix: str) -> Path:
    site = make_site(tmp_path, upstream, prefix, {"helper": HELPER})
    config = (site / "headend.yaml").read_text()
    config = config.replace("providers:\n", "providers:" + EMBEDDED, 1)
    (site / "headend.yaml").write_text(config + "  smol: tiny\n")
    return site


def parent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def ask(base: str, model: str, traceparent: str | None = None, **extra: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    if traceparent is not None:
        headers["traceparent"] = traceparent
    response = httpx.post(
        base + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": QUESTION}], **extra},
        headers=headers,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response


def only(spans: list[Span], name: str) -> list[Span]:
    return [span for span in spans if span.name == name]


def test_an_agent_run_is_traced_under_the_clients_trace(
    upstream: FakeUpstream, collector: OtlpCollector, tmp_path: Path
) -> None:
    upstream.reset()
    site = traced_site(tmp_path, upstream, "tr")
    server = serve(site, env=otel_env(collector))
    try:
        upstream.script("tr", Reply(tool_calls=[ADD], usage=(11, 3)), Reply(text=ANSWER))
        trace_id, client_span, traceparent = parent()
        answer = ask(server.base_url, "helper", traceparent).json()
        streamed = ask(server.base_url, "smol", stream=True, max_tokens=4)
        assert "data:" in streamed.text
        collector.wait_for("chat tiny")
        collector.wait_for("POST /v1/chat/completions")
    finally:
        stop_server(server)  # flushes what is left

    spans = [span for span in collector.spans if span.trace_id == trace_id]
    [request] = only(spans, "POST /v1/chat/completions")
    assert (request.kind, request.parent_id) == ("server", client_span)
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["headend.model"] == "helper"
    assert request.service == "headend"

    [agent] = only(spans, "invoke_agent helper")
    assert agent.parent_id == request.span_id
    assert agent.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert agent.attributes["gen_ai.agent.name"] == "helper"
    assert agent.attributes["gen_ai.agent.version"] == "1"  # its first recorded version
    assert agent.attributes["gen_ai.conversation.id"] == answer["session_id"]

    calls = only(spans, "chat gpt")
    assert len(calls) == 2
    for call in calls:
        assert call.kind == "client"
        assert call.parent_id == agent.span_id
        assert call.attributes["gen_ai.operation.name"] == "chat"
        assert call.attributes["gen_ai.provider.name"] == "openai"
        assert call.attributes["gen_ai.request.model"] == "gpt"
        assert call.attributes["headend.provider"] == "up"
    finish = sorted(tuple(c.attributes["gen_ai.response.finish_reasons"]) for c in calls)
    assert finish == [("stop",), ("tool_calls",)]
    usage = {
        (c.attributes["gen_ai.usage.input_tokens"], c.attributes["gen_ai.usage.output_tokens"])
        for c in calls
    }
    assert usage == {(11, 3), (5, 7)}

    [tool] = only(spans, "execute_tool calculator")
    assert tool.parent_id == agent.span_id
    assert tool.attributes["gen_ai.tool.name"] == "calculator"
    assert tool.attributes["gen_ai.tool.call.id"] == "call_add_1"
    assert not tool.error

    # Each upstream call carried its own span's context: the upstream's work joins the trace.
    sent = [r.headers.get("traceparent", "") for r in upstream.received("tr")]
    assert sorted(sent) == sorted(f"00-{trace_id}-{call.span_id}-01" for call in calls)

    # The embedded model's call is internal: no network between headend and the model.
    [embedded] = only(collector.spans, "chat tiny")
    assert embedded.kind == "internal"
    assert embedded.attributes["gen_ai.provider.name"] == "llama.cpp"
    assert embedded.attributes["gen_ai.usage.output_tokens"] >= 1
    assert embedded.trace_id != trace_id  # it had no traceparent: a trace of its own

    assert not [span for span in collector.spans if "/health" in span.name]  # probes: noise

    # Prompts, answers and tool arguments are not recorded unless asked for.
    recorded = json.dumps([s.attributes for s in collector.spans])
    for text in (QUESTION, ANSWER, "2 + 2"):
        assert text not in recorded


def test_content_is_recorded_when_asked(
    upstream: FakeUpstream, collector: OtlpCollector, tmp_path: Path
) -> None:
    upstream.reset()
    site = make_site(tmp_path, upstream, "tc", {"helper": HELPER})
    capture = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}
    server = serve(site, env=otel_env(collector, OTEL_SERVICE_NAME="gateway-eu", **capture))
    try:
        upstream.script("tc", Reply(tool_calls=[ADD]), Reply(text=ANSWER))
        ask(server.base_url, "helper")
        tool = collector.wait_for("execute_tool calculator")
        collector.wait_for("invoke_agent helper")
    finally:
        stop_server(server)
    assert tool.attributes["gen_ai.tool.call.arguments"] == ADD["arguments"]
    assert tool.attributes["gen_ai.tool.call.result"].startswith("4")
    calls = only(collector.spans, "chat gpt")
    first = min(calls, key=lambda c: len(c.attributes["gen_ai.input.messages"]))
    messages = json.loads(first.attributes["gen_ai.input.messages"])
    assert messages[-1] == {"role": "user", "parts": [{"type": "text", "content": QUESTION}]}
    outputs = [json.loads(c.attributes.get("gen_ai.output.messages", "[]")) for c in calls]
    assert [{"role": "assistant", "parts": [{"type": "text", "content": ANSWER}]}] in outputs
    assert {span.service for span in collector.spans} == {"gateway-eu"}


def test_untraced_the_clients_trace_context_still_reaches_the_upstream(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.reset()
    site = make_site(tmp_path, upstream, "tu", {})
    server = serve(site)
    try:
        upstream.script("tu", Reply(), Reply(), Reply())
        _, _, traceparent = parent()
        ask(server.base_url, "gpt", traceparent)
        ask(server.base_url, "gpt")
        ask(server.base_url, "gpt", "00-not-a-trace-context")
    finally:
        stop_server(server)
    sent = [r.headers.get("traceparent") for r in upstream.received("tu")]
    assert sent == [traceparent, None, None]  # passed on unchanged; a malformed one dropped
