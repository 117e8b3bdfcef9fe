"""What letting a request in costs: budget, rates, concurrency slots and usage counting, per
request.

Runs the admission of ``headend.runs.admission`` in-process, as a chat request does
(check the key's budget and rates, take slots, give them back and count tokens and cost),
for a key without limits, a key with rates and a concurrency cap, and a key with a budget
(never reached; its spend read from a SQLite store in a temporary directory), in memory, and
the same through Redis when ``--redis`` is given (a loopback redis-server:
``redis-server --port 6390 --save ''``).

    .venv/bin/python bench/admission.py [--redis redis://127.0.0.1:6390/0] [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from headend.access.principal import Principal
from headend.config import LimitSettings
from headend.limits.base import Limiter, Rates
from headend.limits.budget import Budget
from headend.limits.memory import MemoryLimiter
from headend.pricing import Price
from headend.runs.admission import Admission
from headend.runs.budgets import BudgetBook
from headend.runs.usage import UsageMeter
from headend.store.sqlite import SqliteStore

BIG = 10**9  # limits never reached: the cost of checking them, not of refusing
PRICE = Price(input=1, output=2)


def count_round_trips(limiter: Limiter) -> list[int]:
    """Counts the commands a Redis limiter sends (each one round trip); none in memory."""
    sent = [0]
    client = getattr(limiter, "_redis", None)
    if client is not None:
        send = client.execute_command

        async def counted(*args: Any, **options: Any) -> Any:
            sent[0] += 1
            return await send(*args, **options)

        client.execute_command = counted
    return sent


async def per_request(
    limiter: Limiter, store: SqliteStore, principal: Principal, agent_limit: int | None, n: int
) -> tuple[float, float]:
    """µs and round trips per request."""
    meter = UsageMeter(store)
    admission = Admission(limiter, LimitSettings(), meter, budgets=BudgetBook(store, meter))
    usage: dict[str, Any] = {"prompt_tokens": 5, "completion_tokens": 7}
    for _ in range(n // 10):  # warm up
        ticket = await admission.admit(principal, "agent", agent_limit)
        await admission.leave(ticket, lambda: 0)
    sent = count_round_trips(limiter)
    started = time.perf_counter()
    for _ in range(n):
        ticket = await admission.admit(principal, "agent", agent_limit)
        ticket.usage = usage
        ticket.spend.add(PRICE, usage)
        await admission.leave(ticket, lambda: 0)
    return (time.perf_counter() - started) / n * 1e6, sent[0] / n


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis")
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    open_key = Principal("key_open", frozenset(["chat"]))
    limited = Principal("key_lim", frozenset(["chat"]), None, Rates(BIG, BIG), BIG)
    budgeted = Principal("key_bud", frozenset(["chat"]), budget=Budget(BIG, "month"))
    backends: list[tuple[str, Limiter]] = [("memory", MemoryLimiter())]
    if args.redis:
        from headend.limits.redis import RedisLimiter

        backends.append(("redis", RedisLimiter(args.redis)))
    print("| limiter | key | agent pool | round trips | µs per request |")
    print("|---|---|---|---:|---:|")
    store = SqliteStore(Path(tempfile.mkdtemp()) / "bench.db")
    await store.start()
    for name, limiter in backends:
        await limiter.start()
        for label, principal, agent_limit in (
            ("no limits", open_key, None),
            ("no limits", open_key, 4),
            ("rpm + tpm + max_concurrency", limited, 4),
            ("budget", budgeted, None),
        ):
            cost, trips = await per_request(limiter, store, principal, agent_limit, args.requests)
            pool = "yes" if agent_limit else "no"
            print(f"| {name} | {label} | {pool} | {trips:.2f} | {cost:.1f} |")
        await limiter.close()
    await store.close()


if __name__ == "__main__":
    asyncio.run(main())
