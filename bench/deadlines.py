"""What a deadline costs: ``asyncio.timeout`` against headend's ``Deadlines`` (one loop timer
for many blocks), per block entered and left in time, under uvloop as ``headend serve`` runs.

    .venv/bin/python bench/deadlines.py [--blocks 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import uvloop

from headend.providers.deadlines import Deadlines


async def per_block(block: Callable[[], AbstractAsyncContextManager[Any]], count: int) -> float:
    """µs per block."""
    started = time.perf_counter()
    for _ in range(count):
        async with block():
            pass
    return (time.perf_counter() - started) / count * 1e6


async def main(blocks: int, rounds: int) -> None:
    deadlines = Deadlines()
    print("| round | asyncio.timeout (µs) | Deadlines (µs) |\n|---:|---:|---:|")
    for round_ in range(1, rounds + 1):
        standard = await per_block(lambda: asyncio.timeout(5), blocks)
        ours = await per_block(lambda: deadlines.after(5), blocks)
        print(f"| {round_} | {standard:.2f} | {ours:.2f} |", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    uvloop.run(main(args.blocks, args.rounds))
