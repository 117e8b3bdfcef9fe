"""Session store speed at scale: load a session's history, and write a turn, with 10,000
sessions and 1,000,000 messages in the store, for SQLite and PostgreSQL.

Goal (issue 5): under 5 ms at p99 for both operations on both backends.

    .venv/bin/python bench/sessions.py [--sessions 10000] [--messages 1000000] [--ops 2000]

PostgreSQL runs as a throwaway cluster on a loopback port (Debian's package; see
scripts/services.sh); SQLite in a temporary file. Each history holds 100 messages (the
store's average at this scale); each written turn is 2 messages of about 200 bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import free_port
from tests.postgres import postgres_cluster

from headend.store.base import Store
from headend.store.postgres import PostgresStore
from headend.store.sqlite import SqliteStore

TEXT = "x" * 180


def message(role: str, n: int) -> dict[str, str]:
    return {"role": role, "content": f"{n} {TEXT}"}


async def fill(store: Store, sessions: int, messages: int) -> list[str]:
    """Sessions with ``messages / sessions`` messages each, written a turn at a time."""
    ids = [f"sess_bench_{i:06d}" for i in range(sessions)]
    per = messages // sessions
    for number, session_id in enumerate(ids):
        await store.create_session(session_id, None, "bench", {})
        # One call a session: only the setup is batched; measured operations are single turns.
        history = [message(role, t) for t in range(per // 2) for role in ("user", "assistant")]
        await store.append_turn(session_id, history)
        if number % 1000 == 999:
            print(f"  {number + 1} sessions", flush=True)
    return ids


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)]


async def measure(store: Store, ids: list[str], ops: int) -> dict[str, list[float]]:
    rng = random.Random(7)
    timings: dict[str, list[float]] = {"load history": [], "write turn": []}
    for n in range(ops):
        session_id = rng.choice(ids)
        started = time.perf_counter()
        history = await store.messages(session_id)
        timings["load history"].append((time.perf_counter() - started) * 1000)
        assert history
        started = time.perf_counter()
        await store.append_turn(session_id, [message("user", n), message("assistant", n)])
        timings["write turn"].append((time.perf_counter() - started) * 1000)
    return timings


async def bench(name: str, store: Store, args: argparse.Namespace) -> list[str]:
    await store.start()
    try:
        started = time.perf_counter()
        print(f"{name}: filling {args.sessions} sessions / {args.messages} messages", flush=True)
        ids = await fill(store, args.sessions, args.messages)
        print(f"{name}: filled in {time.perf_counter() - started:.0f} s", flush=True)
        timings = await measure(store, ids, args.ops)
    finally:
        await store.close()
    rows = []
    for operation, values in timings.items():
        rows.append(
            f"| {name} | {operation} | {statistics.median(values):.2f} | "
            f"{percentile(values, 0.99):.2f} | {max(values):.2f} | {len(values)} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    rows: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="headend-bench-sessions-"))
    if args.only in (None, "sqlite"):
        rows += asyncio.run(bench("sqlite", SqliteStore(work / "bench.db"), args))
        size = (work / "bench.db").stat().st_size
        with sqlite3.connect(work / "bench.db") as db:
            count = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        print(f"sqlite: {count} messages, {size / 1e6:.0f} MB", flush=True)
    if args.only in (None, "postgres"):
        with postgres_cluster(free_port()) as url:
            rows += asyncio.run(bench("postgres", PostgresStore(url), args))
    print("\n| store | operation | p50 (ms) | p99 (ms) | max (ms) | ops |")
    print("|---|---|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
