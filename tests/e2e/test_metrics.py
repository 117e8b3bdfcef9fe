"""``GET /metrics``: who may read it, and that each metric moves when what it counts happens
(read with prometheus-client's own parser, as Prometheus would)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, HI, issue, serve
from tests.upstream import FakeUpstream, Reply, Status

pytestmark = pytest.mark.e2e

CONFIG = """
providers:
  up: {{type: openai, base_url: "{url}/v1", retry: {{attempts: 1}}}}
  flaky:
    type: openai
    base_url: "{flaky}/v1"
    retry: {{attempts: 2, backoff: 0}}
    cooldown: {{after_failures: 1, seconds: 60}}
models:
  gpt: up/gpt
  shaky: flaky/shaky
"""
WORKER = """---
model: up/worker-model
tools: [calculator]
max_concurrency: 1
---
You work.
"""


@pytest.fixture(scope="module")
def site(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("metrics")
    (root / "agents").mkdir()
    (root / "agents" / "worker.md").write_text(WORKER)
    (root / "headend.yaml").write_text(
        CONFIG.format(url=upstream.url("m"), flaky=upstream.url("mf"))
    )
    server = serve(root)
    yield server
    stop_server(server)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: RunningServer, secret: str | None = ADMIN) -> Samples:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    response = httpx.get(server.base_url + "/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4;")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def sdk(server: RunningServer, secret: str = ADMIN) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api, api_key=secret, max_retries=0)


def call(name: str, arguments: dict[str, object], call_id: str) -> dict[str, str]:
    return {"id": call_id, "name": name, "arguments": json.dumps(arguments)}


def test_only_keys_with_the_metrics_scope_read_them(site: RunningServer) -> None:
    assert httpx.get(site.base_url + "/metrics").status_code == 401
    chat_only = issue(site, name="chatter", scopes=["chat"])["secret"]
    refused = httpx.get(
        site.base_url + "/metrics", headers={"Authorization": f"Bearer {chat_only}"}
    )
    assert refused.status_code == 403
    assert "'metrics' scope" in refused.json()["error"]["message"]
    reader = issue(site, name="prometheus", scopes=["metrics"])
    assert "headend_requests_total" in {name for name, _ in scrape(site, str(reader["secret"]))}
    # A metrics key reads nothing else.
    assert (
        httpx.get(
            site.api + "/models", headers={"Authorization": f"Bearer {reader['secret']}"}
        ).status_code
        == 403
    )


def test_requests_tokens_and_streams_are_counted(site: RunningServer, fake: FakeUpstream) -> None:
    before = scrape(site)
    fake.script("m", Reply(usage=(11, 3)), Reply(text="one two three", usage=(4, 6)))
    client = sdk(site)
    client.chat.completions.create(model="gpt", messages=HI)
    words = [
        chunk.choices[0].delta.content
        for chunk in client.chat.completions.create(model="gpt", messages=HI, stream=True)
        if chunk.choices and chunk.choices[0].delta.content
    ]
    assert "".join(words).split() == ["one", "two", "three"]
    after = scrape(site)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"surface": "chat_completions", "model": "gpt"}
    assert grew("headend_requests_total", **ok, status="200") == 2
    assert grew("headend_request_duration_seconds_count", **ok) == 2
    assert grew("headend_time_to_first_token_seconds_count", **ok) == 1  # the stream only
    assert grew("headend_tokens_total", model="gpt", direction="input") == 15
    assert grew("headend_tokens_total", model="gpt", direction="output") == 9
    assert grew("headend_upstream_attempts_total", provider="up", outcome="ok") == 2
    assert value(after, "headend_open_streams", surface="chat_completions") == 0
    assert grew("headend_overhead_seconds_count", surface="chat_completions") == 2


def test_store_operations_are_timed(site: RunningServer) -> None:
    before = scrape(site)
    issue(site, name="timed")
    after = scrape(site)
    timed = "headend_store_operation_duration_seconds_count"
    assert (
        value(after, timed, operation="create_key") - value(before, timed, operation="create_key")
        == 1
    )


def test_an_open_stream_is_counted_while_it_runs(site: RunningServer, fake: FakeUpstream) -> None:
    fake.script("m", Reply(text="a b c d", chunk_delay=0.4))
    with httpx.stream(
        "POST",
        site.api + "/chat/completions",
        json={"model": "gpt", "messages": HI, "stream": True},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=30,
    ) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data:"))
        assert value(scrape(site), "headend_open_streams", surface="chat_completions") == 1
        for _ in lines:
            pass
    assert value(scrape(site), "headend_open_streams", surface="chat_completions") == 0


def test_labels_never_carry_names_sessions_secrets_or_text(
    site: RunningServer, fake: FakeUpstream
) -> None:
    secret = str(issue(site, name="someone", scopes=["chat"])["secret"])
    made_up = "no-such-model-7f3a"
    missing = httpx.post(
        site.api + "/chat/completions",
        json={"model": made_up, "messages": HI},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert missing.status_code == 404
    fake.script(
        "m",
        Reply(text="", tool_calls=[call("invented_tool_9c1", {}, "x1")]),
        Reply(text="secret-answer-text"),
    )
    reply = httpx.post(
        site.api + "/chat/completions",
        json={
            "model": "worker",
            "messages": [{"role": "user", "content": "private-question-text"}],
        },
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    ).json()
    assert reply["choices"][0]["message"]["content"] == "secret-answer-text"
    session_id = reply["session_id"]
    text = httpx.get(site.base_url + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).text
    for leaked in (made_up, "invented_tool_9c1", secret, session_id,
                   "private-question-text", "secret-answer-text"):  # fmt: skip
        assert leaked not in text
    samples = scrape(site)
    assert value(samples, "headend_requests_total", surface="chat_completions", model="",
                 status="404") >= 1  # fmt: skip
    assert value(samples, "headend_tool_calls_total", tool="unknown", outcome="unknown") >= 1


def test_tool_calls_by_tool_and_outcome(site: RunningServer, fake: FakeUpstream) -> None:
    before = scrape(site)
    fake.script(
        "m",
        Reply(
            text="",
            tool_calls=[
                call("calculator", {"expression": "2 + 2"}, "c1"),
                call("calculator", {"expression": "2 +"}, "c2"),
            ],
        ),
        Reply(text="4"),
    )
    sdk(site).chat.completions.create(model="worker", messages=HI)
    after = scrape(site)
    for outcome in ("ok", "error"):
        grown = value(after, "headend_tool_calls_total", tool="calculator", outcome=outcome)
        assert grown - value(before, "headend_tool_calls_total", tool="calculator",
                             outcome=outcome) == 1  # fmt: skip
    durations = value(after, "headend_tool_call_duration_seconds_count", tool="calculator")
    assert durations - value(before, "headend_tool_call_duration_seconds_count",
                             tool="calculator") == 2  # fmt: skip


def test_retries_failures_and_cooldown_by_provider(site: RunningServer, fake: FakeUpstream) -> None:
    fake.script("mf", Status(503), Reply(text="second try"))
    assert sdk(site).chat.completions.create(model="shaky", messages=HI).choices[0].message.content
    samples = scrape(site)
    assert value(samples, "headend_upstream_attempts_total", provider="flaky", outcome="error") == 1
    assert value(samples, "headend_upstream_attempts_total", provider="flaky", outcome="ok") == 1
    assert value(samples, "headend_upstream_retries_total", provider="flaky") == 1
    assert value(samples, "headend_upstream_cooling_down", provider="flaky") == 0
    fake.script("mf", Status(503), Status(503))
    with pytest.raises(openai.APIStatusError):
        sdk(site).chat.completions.create(model="shaky", messages=HI)
    samples = scrape(site)
    assert value(samples, "headend_upstream_failures_total", provider="flaky") == 1
    assert value(samples, "headend_upstream_cooling_down", provider="flaky") == 1
    assert value(samples, "headend_upstream_cooling_down", provider="up") == 0


def test_rate_limit_refusals_and_queue_waits(site: RunningServer, fake: FakeUpstream) -> None:
    before = scrape(site)
    limited = str(issue(site, name="slow-lane", scopes=["chat"], rpm=1)["secret"])
    fake.script("m", Reply(), Reply())
    sdk(site, limited).chat.completions.create(model="gpt", messages=HI)
    with pytest.raises(openai.RateLimitError):
        sdk(site, limited).chat.completions.create(model="gpt", messages=HI)
    sdk(site).chat.completions.create(model="worker", messages=HI)
    after = scrape(site)
    refused = value(after, "headend_rate_limited_total", kind="requests")
    assert refused - value(before, "headend_rate_limited_total", kind="requests") == 1
    waits = value(after, "headend_queue_wait_seconds_count", kind="agent", pool="worker")
    assert waits - value(before, "headend_queue_wait_seconds_count", kind="agent",
                         pool="worker") == 1  # fmt: skip
    assert value(after, "headend_queue_depth", kind="agent", pool="worker") == 0
    assert not [name for name, labels in after if ("pool", limited) in labels]


def test_metric_names_follow_prometheus_conventions(site: RunningServer) -> None:
    families = text_string_to_metric_families(
        httpx.get(site.base_url + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).text
    )
    ours = [family for family in families if family.name.startswith("headend_")]
    assert len(ours) >= 15
    for family in ours:
        assert re.fullmatch(r"headend_[a-z_]+", family.name)
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name


def test_embedded_model_tokens_and_open_mode(server: RunningServer) -> None:
    """The session's server runs without keys on loopback: /metrics is open there too."""
    before = scrape(server, secret=None)
    reply = httpx.post(
        server.api + "/chat/completions",
        json={"model": "smol", "messages": HI, "max_tokens": 5, "temperature": 0},
        timeout=120,
    ).json()
    generated = reply["usage"]["completion_tokens"]
    after = scrape(server, secret=None)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("headend_embedded_tokens_total", provider="local", phase="generated") == generated
    # Prompt tokens read, less any the cache already held.
    read = grew("headend_embedded_tokens_total", provider="local", phase="prompt")
    assert 0 < read <= reply["usage"]["prompt_tokens"]
    assert grew("headend_embedded_busy_seconds_total", provider="local") > 0
