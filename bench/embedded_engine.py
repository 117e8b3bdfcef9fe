"""The embedded model's batching engine alone, without HTTP: aggregate tokens/s with N
concurrent generations of 128 greedy tokens, and the share of the wall time spent inside
``llama_decode`` (the rest is headend's own Python per step).

    .venv/bin/python bench/embedded_engine.py [--streams 4] [--rounds 3]

Compare with llama.cpp's own ``llama-batched-bench`` (built by bench/setup.sh):
``llama-batched-bench -m <gguf> -c 4096 -b 512 -ub 512 -npp 32 -ntg 128 -npl 1,4 -t 2 -kvu``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from headend.config import Settings  # noqa: E402
from headend.providers.base import ChatCall  # noqa: E402
from headend.providers.llama_cpp import LlamaCppConfig, LlamaCppProvider  # noqa: E402


class TimedDecode:
    """llama_cpp with ``llama_decode`` timed; everything else passed through."""

    def __init__(self, llama: Any) -> None:
        self._llama = llama
        self.seconds = 0.0
        self.steps = 0

    def llama_decode(self, context: Any, batch: Any) -> int:
        started = time.perf_counter()
        status: int = self._llama.llama_decode(context, batch)
        self.seconds += time.perf_counter() - started
        self.steps += 1
        return status

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llama, name)


async def one(provider: LlamaCppProvider, n: int) -> int:
    body = {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": f"Story number {n}: tell me about the sea."},
        ],
        "max_tokens": 128,
        "temperature": 0,
    }
    tokens = 0
    async for batch in provider.stream(ChatCall(body=body)):
        for chunk in batch:
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return tokens


async def run(streams: int, rounds: int) -> None:
    provider = LlamaCppProvider("bench", LlamaCppConfig(n_threads=2), Settings())
    await asyncio.to_thread(provider._load)
    engine: Any = provider._engine
    timed = engine._llama = TimedDecode(engine._llama)
    await one(provider, 9999)  # warm up
    print("| streams | tok/s | steps | ms per step | in llama_decode |")
    print("|---:|---:|---:|---:|---:|")
    for r in range(rounds):
        timed.seconds, timed.steps = 0.0, 0
        started = time.perf_counter()
        tokens = await asyncio.gather(*(one(provider, r * 100 + i) for i in range(streams)))
        elapsed = time.perf_counter() - started
        print(
            f"| {streams} | {sum(tokens) / elapsed:.1f} | {timed.steps} | "
            f"{timed.seconds / timed.steps * 1000:.1f} | {timed.seconds / elapsed:.0%} |"
        )
    await provider.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.streams, args.rounds))


if __name__ == "__main__":
    main()
