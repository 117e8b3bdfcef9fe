"""Prometheus metrics: one ``Metrics`` per app, its own registry, named by Prometheus
conventions (``headend_…_total`` counters, ``_seconds`` histograms).

Label values are bounded: surfaces and pool kinds are fixed words, models are names an
operator configured (a request naming anything else is labelled ``""``), tools are the
agent's own (a call to a tool the model made up is ``unknown``). Never a key secret, a key
id, a session id or free text.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
FAST_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip

ToolOutcome = Literal["ok", "error", "timeout", "unknown", "blocked"]
M = TypeVar("M", Counter, Gauge, Histogram)


class Metrics:
    """``multiprocess_dir``: set under ``--workers``, where every worker's values are kept
    (prometheus-client reads ``PROMETHEUS_MULTIPROC_DIR`` at import to write them there); a
    scrape of any worker then sums them all."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "headend_requests",
            "HTTP requests answered, by API surface, model and status code.",
            ["surface", "model", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "headend_request_duration_seconds",
            "From a request's arrival to its answer's last byte (a stream's end).",
            ["surface", "model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.first_token = Histogram(
            "headend_time_to_first_token_seconds",
            "From a streamed request's arrival to its first event.",
            ["surface", "model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.overhead = Histogram(
            "headend_overhead_seconds",
            "headend's own time in a request: its duration less the time spent waiting on "
            "upstreams (the x-headend-overhead-ms header).",
            ["surface"],
            buckets=FAST_BUCKETS,
            registry=registry,
        )
        self.open_streams = Gauge(
            "headend_open_streams",
            "Streamed answers being sent now.",
            ["surface"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.tokens = Counter(
            "headend_tokens",
            "Tokens by model and direction (input: the prompt, output: the answer).",
            ["model", "direction"],
            registry=registry,
        )
        self.tool_calls = Counter(
            "headend_tool_calls",
            "Tool calls an agent made, by tool and outcome (ok, error, timeout, unknown).",
            ["tool", "outcome"],
            registry=registry,
        )
        self.tool_duration = Histogram(
            "headend_tool_call_duration_seconds",
            "How long a tool call took.",
            ["tool"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.queued = Gauge(
            "headend_queue_depth",
            "Requests waiting for a slot of a concurrency pool (kind: global, agent, model, "
            "key; the name of a key's pool is left out).",
            ["kind", "pool"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.queue_wait = Histogram(
            "headend_queue_wait_seconds",
            "How long a request waited for a slot of a concurrency pool.",
            ["kind", "pool"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.refused = Counter(
            "headend_rate_limited",
            "Requests refused with 429, by kind: requests or tokens (a rate), concurrency "
            "(a full queue, or waited too long), insufficient_quota (a spent budget).",
            ["kind"],
            registry=registry,
        )
        self.upstream_attempts = Counter(
            "headend_upstream_attempts",
            "Calls to a provider, retries included, by outcome (ok, error).",
            ["provider", "outcome"],
            registry=registry,
        )
        self.upstream_retries = Counter(
            "headend_upstream_retries",
            "Calls to a provider that were a retry of a failed one.",
            ["provider"],
            registry=registry,
        )
        self.upstream_failures = Counter(
            "headend_upstream_failures",
            "Requests a provider failed after its retries (what counts towards its cooldown).",
            ["provider"],
            registry=registry,
        )
        self.cooling = Gauge(
            "headend_upstream_cooling_down",
            "1 while a provider is skipped after failing too often in a row, else 0 (with "
            "workers: 1 while any worker skips it).",
            ["provider"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.store_ops = Histogram(
            "headend_store_operation_duration_seconds",
            "Store (SQLite or PostgreSQL) operations, by operation.",
            ["operation"],
            buckets=FAST_BUCKETS,
            registry=registry,
        )
        self.background_runs = Gauge(
            "headend_background_runs",
            "Background responses of this instance (summed over its workers), by status: "
            "queued (waiting for a slot) or in_progress.",
            ["status"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.approvals = Counter(
            "headend_approvals",
            "Tool calls that waited for a person's approval, by outcome: requested, "
            "approved, denied (or left unanswered), expired.",
            ["outcome"],
            registry=registry,
        )
        self.approval_wait = Histogram(
            "headend_approval_decision_seconds",
            "From a tool call's approval request to a person's answer (approved or denied).",
            ["outcome"],
            buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86_400),
            registry=registry,
        )
        self.background_claims = Counter(
            "headend_background_runs_claimed",
            "Background responses taken over from an instance that stopped, by outcome "
            "(resumed: going on here; failed: could not go on, ended as failed).",
            ["outcome"],
            registry=registry,
        )
        self.webhook_deliveries = Counter(
            "headend_webhook_deliveries",
            "Webhook delivery attempts, by outcome (delivered; retry: failed, to be tried "
            "again; failed: given up on).",
            ["outcome"],
            registry=registry,
        )
        self.embedded_tokens = Counter(
            "headend_embedded_tokens",
            "Tokens the embedded model computed, by phase (prompt: read, generated: sampled); "
            "rate() of the generated ones is its tokens per second.",
            ["provider", "phase"],
            registry=registry,
        )
        self.embedded_busy = Counter(
            "headend_embedded_busy_seconds",
            "Seconds the embedded model spent computing: generated tokens over this is its "
            "speed while busy.",
            ["provider"],
            registry=registry,
        )

        self.knowledge_files = Counter(
            "headend_knowledge_files",
            "Vector store files ingested, by outcome (completed, failed, or lost: its claim "
            "passed to another instance).",
            ["outcome"],
            registry=registry,
        )
        self.knowledge_chunks = Counter(
            "headend_knowledge_chunks",
            "Chunks embedded and indexed into vector stores.",
            registry=registry,
        )
        self.knowledge_queue = Gauge(
            "headend_knowledge_ingest_queue",
            "Vector store files waiting for or under ingestion, store-wide, as last seen.",
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.knowledge_search = Histogram(
            "headend_knowledge_search_duration_seconds",
            "One vector store search, from query to results (embedding the query included).",
            buckets=FAST_BUCKETS,
            registry=registry,
        )

        self.guardrail_checks = Counter(
            "headend_guardrail_checks",
            "Guardrail checks run, by check, its action, and outcome: pass, hit (the action "
            "was taken) or error (it could not check: it blocked, unless on_error: allow).",
            ["check", "action", "outcome"],
            registry=registry,
        )
        self.guardrail_duration = Histogram(
            "headend_guardrail_check_duration_seconds",
            "Time one guardrail check took on a request or an answer (a judge's model call "
            "included).",
            ["check"],
            buckets=FAST_BUCKETS,
            registry=registry,
        )

    def exposition(self) -> bytes:
        """The text format of every metric (every worker's, summed, under ``--workers``)."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def child(self, metric: M, *labels: str) -> M:
        """``metric.labels(*labels)``, remembered: prometheus-client checks the values and
        takes a lock on every call, and a request makes several (label values are bounded,
        see above, so this stays small)."""
        key = (id(metric), labels)
        found: M | None = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    # ---- what the rest of headend reports
    def count_tokens(self, model: str, prompt: int, completion: int) -> None:
        if prompt:
            self.child(self.tokens, model, "input").inc(prompt)
        if completion:
            self.child(self.tokens, model, "output").inc(completion)

    def tool_call(self, tool: str, outcome: ToolOutcome, seconds: float) -> None:
        self.tool_calls.labels(tool, outcome).inc()
        self.tool_duration.labels(tool).observe(seconds)

    def guardrail_checked(self, check: str, action: str, outcome: str, seconds: float) -> None:
        self.child(self.guardrail_checks, check, action, outcome).inc()
        self.child(self.guardrail_duration, check).observe(seconds)

    def upstream_attempt(self, provider: str, ok: bool, retry: bool) -> None:
        self.child(self.upstream_attempts, provider, "ok" if ok else "error").inc()
        if retry:
            self.upstream_retries.labels(provider).inc()

    def embedded_step(self, provider: str, prompt: int, generated: int, seconds: float) -> None:
        """One step of the embedded model (called from its worker thread)."""
        if prompt:
            self.embedded_tokens.labels(provider, "prompt").inc(prompt)
        if generated:
            self.embedded_tokens.labels(provider, "generated").inc(generated)
        self.embedded_busy.labels(provider).inc(seconds)
