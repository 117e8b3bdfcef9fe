"""A 20-call tool chain over the Responses API: HTTP against WebSocket mode.

    .venv/bin/python bench/websocket_chain.py [--chains 10] [--calls 20] [--latency 0,0.02]

What Codex CLI does on each transport, on a model route (``store: false``, as Codex sends):
over HTTP every turn is a POST with the whole conversation so far (the input grows by a
call and its output each turn); over the WebSocket every turn is a ``response.create`` with
``previous_response_id`` and only the new ``function_call_output``, the socket holding the
rest. Each turn streams; the client "runs" each call at once. One headend as ``headend
serve`` runs it (access log on, a key from the store), in front of the suite's fake upstream
(a real HTTP server on loopback) answering each model call after ``--latency`` seconds with
the next call, then with text. Chains alternate between the transports; the table gives the
median chain and the median per call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sites import served_site
from tests.upstream import FakeUpstream, Reply

ADMIN = "bench-admin-key-0123456789abcdef0123"
CONFIG = """
providers:
  up: {{type: openai, base_url: "{upstream}/v1", retry: {{attempts: 1}}}}
models:
  gpt: up/gpt
"""
TOOLS = [
    {
        "type": "function",
        "name": "shell",
        "description": "Run a command.",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
    }
]
TASK = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Go."}]}]


def replies(calls: int, latency: float) -> list[Reply]:
    chain = [
        Reply(
            text="",
            first_delay=latency,
            tool_calls=[
                {
                    "id": f"call_{n}",
                    "name": "shell",
                    "arguments": json.dumps({"command": f"ls {n}"}),
                }
            ],
        )
        for n in range(calls)
    ]
    return [*chain, Reply(text="All done.", first_delay=latency)]


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt", "store": False, "tools": TOOLS, **fields}


def output_of(call: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call["call_id"], "output": "file.txt"}


async def http_chain(http: httpx.AsyncClient, calls: int) -> float:
    started = time.perf_counter()
    history = list(TASK)
    for _ in range(calls + 1):
        done = None
        async with http.stream("POST", "/v1/responses", json=body(input=history, stream=True)) as r:
            async for line in r.aiter_lines():
                if line.startswith("data: ") and '"response.completed"' in line:
                    done = json.loads(line[6:])["response"]
        assert done is not None
        made = [item for item in done["output"] if item["type"] == "function_call"]
        if not made:
            break
        history += [*made, output_of(made[0])]
    return time.perf_counter() - started


async def socket_chain(url: str, calls: int) -> float:
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with connect(url, additional_headers=headers, compression=None) as socket:
        send: dict[str, Any] = body(input=TASK)
        for _ in range(calls + 1):
            await socket.send(json.dumps({"type": "response.create", **send}))
            while True:
                event = json.loads(await socket.recv())
                if event["type"] == "response.completed":
                    break
                assert event["type"] != "error", event
            done = event["response"]
            made = [item for item in done["output"] if item["type"] == "function_call"]
            if not made:
                break
            send = body(input=[output_of(made[0])], previous_response_id=done["id"])
    return time.perf_counter() - started


async def measure(
    base_url: str, fake: FakeUpstream, chains: int, calls: int, latency: float
) -> dict[str, list[float]]:
    url = base_url.replace("http://", "ws://") + "/v1/responses"
    took: dict[str, list[float]] = {"http": [], "websocket": []}
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as http:
        for round_ in range(chains + 1):  # the first round warms both up, unmeasured
            for transport in ("http", "websocket"):
                fake.script("b", *replies(calls, latency))
                if transport == "http":
                    seconds = await http_chain(http, calls)
                else:
                    seconds = await socket_chain(url, calls)
                assert len(fake.received("b")) >= calls + 1
                fake.reset()
                if round_:
                    took[transport].append(seconds)
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chains", type=int, default=10)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--latency", default="0,0.02")
    args = parser.parse_args()
    fake = FakeUpstream()
    fake.start()
    rows = []
    with served_site(CONFIG.format(upstream=fake.url("b")), ADMIN) as server:
        for latency in (float(x) for x in args.latency.split(",")):
            took = asyncio.run(measure(server.base_url, fake, args.chains, args.calls, latency))
            rows.append((latency, took))
    turns = args.calls + 1
    print(f"{args.calls}-call chains ({turns} responses each), {args.chains} chains per cell")
    print(
        "| upstream latency | HTTP chain | WebSocket chain | HTTP per turn | WS per turn |", end=""
    )
    print(" WS / HTTP |")
    print("|---|---:|---:|---:|---:|---:|")
    for latency, took in rows:
        http, ws = statistics.median(took["http"]), statistics.median(took["websocket"])
        print(
            f"| {latency * 1000:.0f} ms | {http * 1000:.1f} ms | {ws * 1000:.1f} ms | "
            f"{http / turns * 1000:.2f} ms | {ws / turns * 1000:.2f} ms | {ws / http:.2f} |"
        )


if __name__ == "__main__":
    main()
