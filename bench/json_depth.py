"""What refusing deep JSON costs on the way in: ``decode_json`` (parse, bracket count, and
the nesting walk when the count says it must look) against ``orjson.loads`` alone, on a
typical chat body, a long conversation, and two adversarial 9 MB bodies.

    .venv/bin/python bench/json_depth.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from headend.errors import InvalidRequest
from headend.server.json_bodies import decode_json


def per_call(work: Callable[[], object], seconds: float = 1.0) -> float:
    """Microseconds per call, best of three runs of about ``seconds`` each."""
    best = float("inf")
    for _ in range(3):
        calls, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds / 3:
            work()
            calls += 1
        best = min(best, elapsed / calls * 1e6)
    return best


def decoded(body: bytes) -> Callable[[], object]:
    def work() -> object:
        try:
            return decode_json(body)
        except InvalidRequest:
            return None

    return work


def main() -> None:
    hello = {"role": "user", "content": "hello " * 20}
    shapes = {
        "chat body, 10 messages (1.5 kB)": {"model": "m", "messages": [hello] * 10},
        "conversation, 200 messages + 20 tools": {
            "model": "m",
            "messages": [{"role": "user", "content": "a [b] {c} " * 40}] * 200,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}] * 20,
        },
    }
    bodies = {name: orjson.dumps(value) for name, value in shapes.items()}
    bodies["adversarial: 3M empty arrays (9 MB)"] = b"[" + b",".join([b"[]"] * 3_000_000) + b"]"
    deep63 = b"[" * 63 + b"]" * 63
    bodies["adversarial: 70k arrays 63 deep (9 MB)"] = b"[" + b",".join([deep63] * 70_000) + b"]"
    print("| body | bytes | orjson.loads (µs) | decode_json (µs) | added (µs) |")
    print("|---|---:|---:|---:|---:|")
    for name, body in bodies.items():
        seconds = 1.0 if len(body) < 1_000_000 else 9.0
        parse = per_call(lambda body=body: orjson.loads(body), seconds)
        checked = per_call(decoded(body), seconds)
        print(
            f"| {name} | {len(body):,} | {parse:,.1f} | {checked:,.1f} | {checked - parse:,.1f} |"
        )


if __name__ == "__main__":
    main()
