"""Background responses: how long ``background: true`` takes to answer, how many are
accepted per second, and how long after the answer the webhook of the run's end arrives,
for SQLite and PostgreSQL.

    .venv/bin/python bench/background.py [--runs 300] [--only sqlite|postgres]

One headend as ``headend serve`` runs it (access log on), in front of the suite's fake
upstream (a real HTTP server on loopback answering at once), one webhook endpoint (the
suite's receiver, on loopback); PostgreSQL as a throwaway cluster on a loopback port.
Accept: ``--runs`` requests one after another (latency), then ``--runs`` with 16 at a time
(throughput). Webhook: from the accepting answer to the endpoint receiving
``response.completed`` — the run itself (one model call to an upstream answering at once)
and the delivery.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sites import served_site
from tests.conftest import free_port
from tests.postgres import postgres_cluster
from tests.upstream import FakeUpstream
from tests.webhook_receiver import WebhookReceiver

ADMIN = "bench-admin-key-0123456789abcdef0123"
SECRET = "whsec_" + base64.b64encode(b"bench-webhook-secret-0123456789a").decode()
CONFIG = """
providers:
  up: {{type: openai, base_url: "{upstream}/v1", retry: {{attempts: 1}}}}
models:
  gpt: up/gpt
store: {store}
webhooks:
  - url: {hook}
    secret: {secret}
    allow_private: true
"""
BODY = {"model": "gpt", "input": "Hi", "background": True}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)]


async def accept_one(
    http: httpx.AsyncClient, body: dict[str, object] = BODY
) -> tuple[str, float, float]:
    started = time.monotonic()
    answer = await http.post("/v1/responses", json=body)
    answered = time.monotonic()
    assert answer.status_code == 200, answer.text
    return answer.json()["id"], answered - started, answered


async def measure(
    base_url: str, runs: int
) -> tuple[list[float], float, dict[str, float], list[float]]:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as http:
        for _ in range(20):  # warm up
            await accept_one(http)
        answered_at: dict[str, float] = {}
        latencies = []
        for _ in range(runs):
            response_id, took, at = await accept_one(http)
            latencies.append(took)
            answered_at[response_id] = at
        plain = {**BODY, "background": False}  # for reference: the answer, not the promise
        answered = [(await accept_one(http, plain))[1] for _ in range(runs)]
        gate = asyncio.Semaphore(16)

        async def gated() -> tuple[str, float, float]:
            async with gate:
                return await accept_one(http)

        started = time.monotonic()
        await asyncio.gather(*(gated() for _ in range(runs)))
        per_second = runs / (time.monotonic() - started)
    return latencies, per_second, answered_at, answered


def webhook_delays(receiver: WebhookReceiver, answered_at: dict[str, float]) -> list[float]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        arrived = {
            orjson.loads(hook.body)["data"]["id"]: hook.at for hook in receiver.hooks("hook")
        }
        if all(response_id in arrived for response_id in answered_at):
            return [arrived[r] - at for r, at in answered_at.items()]
        time.sleep(0.2)
    raise SystemExit("webhooks did not all arrive within 60 s")


def bench(name: str, store: str, args: argparse.Namespace) -> str:
    upstream, receiver = FakeUpstream(), WebhookReceiver()
    upstream.start()
    receiver.start()
    config = CONFIG.format(
        upstream=upstream.url("bg"), store=store, hook=receiver.url("hook"), secret=SECRET
    )
    try:
        with served_site(config, ADMIN) as server:
            latencies, per_second, answered_at, plain = asyncio.run(
                measure(server.base_url, args.runs)
            )
            delays = webhook_delays(receiver, answered_at)
    finally:
        receiver.stop()
        upstream.stop()
    ms = 1000
    return (
        f"| {name} | {percentile(latencies, 0.5) * ms:.1f} | {percentile(latencies, 0.99) * ms:.1f}"
        f" | {per_second:,.0f} | {percentile(delays, 0.5) * ms:.0f}"
        f" | {percentile(delays, 0.99) * ms:.0f}"
        f" | {percentile(plain, 0.5) * ms:.1f} | {percentile(plain, 0.99) * ms:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    rows = [
        "| store | accept p50 ms | accept p99 ms | accepted/s (16 at a time) "
        "| webhook p50 ms | webhook p99 ms | not background: answer p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if args.only in (None, "sqlite"):
        rows.append(bench("SQLite", "sqlite:///headend.db", args))
    if args.only in (None, "postgres"):
        with postgres_cluster(free_port()) as url:
            rows.append(bench("PostgreSQL", url, args))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
