"""Runs taken up after a crash: how many stale runs the instances claim per second, and how
long after a run's lease lapses another instance has it going again.

    .venv/bin/python bench/takeover.py [--runs 2000] [--claimers 4] [--lapse-runs 8]

Claims: ``--runs`` background runs left stale in the store, then ``--claimers`` stores (as
many instances: their own connections) claim them in passes of 16, as each instance's
takeover loop does, until none is left; every run must be claimed exactly once. On
PostgreSQL also without ``SKIP LOCKED``, to show what it buys.

Lapse: ``--lapse-runs`` agent runs, each in a tool call (``sleep 60``), on one instance;
kill -9 it. PostgreSQL: a second instance shares the store. SQLite: the same instance is
started again on its file. For each run: from its lease lapsing (its last write + 10 s) to
the run answering again (its next model call, to an upstream answering at once, completed).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import RunningServer, free_port, start_server, stop_server
from tests.e2e.waiting import until
from tests.postgres import fresh_database, postgres_cluster
from tests.upstream import FakeUpstream, Reply

from headend.store.background_sql import CLAIM_STALE_SQL
from headend.store.base import ResponseRecord, Store
from headend.store.postgres import PostgresStore
from headend.store.postgres_params import dollars
from headend.store.sqlite import SqliteStore

ADMIN = "bench-admin-key-0123456789abcdef0123"
PASS = 16  # runs.takeover.CLAIMS_PER_PASS
LEASE = 10.0  # runs.takeover.LEASE_SECONDS
AGENT = "---\nmodel: up/worker\ntools: [terminal]\n---\nYou work.\n"
CONFIG = """
providers:
  up: {{type: openai, base_url: "{upstream}/v1", retry: {{attempts: 1}}}}
store: {store}
limits: {{max_background_runs: 1000, agent_concurrency: 100}}
"""


async def stale_runs(store: Store, count: int) -> None:
    for n in range(count):
        body = {"id": f"resp_{n}", "status": "queued", "output": []}
        record = ResponseRecord(f"resp_{n}", None, None, None, 1.0, body, [])
        await store.create_background_run(record, 1.0, {"request": {}})


async def claim_all(claimer: Any, found: list[str]) -> None:
    while True:
        now = time.time()
        claimed = await claimer(now - LEASE, now, PASS)
        if not claimed:
            return
        found += claimed


def plain_claimer(store: PostgresStore, lock: str) -> Any:
    sql = dollars(CLAIM_STALE_SQL.format(lock=lock))

    async def claim(stale_before: float, now: float, limit: int) -> list[str]:
        rows = await store._pool.fetch(sql, now, stale_before, limit)
        return [row[0] for row in rows]

    return claim


async def claims(make: Any, runs: int, claimers: int, lock: str | None = None) -> str:
    seeding = make()
    await seeding.start()
    await stale_runs(seeding, runs)
    stores = [make() for _ in range(claimers)]
    for store in stores:
        await store.start()
    found: list[str] = []

    def claimer(store: Any) -> Any:
        if lock is None:

            async def claim(stale_before: float, now: float, limit: int) -> list[str]:
                return [c.id for c in await store.claim_stale_runs(stale_before, now, limit)]

            return claim
        return plain_claimer(store, lock)

    started = time.monotonic()
    await asyncio.gather(*(claim_all(claimer(store), found) for store in stores))
    took = time.monotonic() - started
    for store in [seeding, *stores]:
        await store.close()
    twice = sum(1 for n in Counter(found).values() if n > 1)
    return f"{runs / took:,.0f} | {len(set(found))} of {runs} | {twice}"


def claim_rows(args: argparse.Namespace, url: str) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "claims.db"
        result = asyncio.run(claims(lambda: SqliteStore(path), args.runs, args.claimers))
        rows.append(f"| SQLite | {args.claimers} | {result} |")
    for label, lock in (("PostgreSQL", None), ("PostgreSQL, no SKIP LOCKED", "")):
        database = fresh_database(url, "claims")
        result = asyncio.run(
            claims(functools.partial(PostgresStore, database), args.runs, args.claimers, lock)
        )
        rows.append(f"| {label} | {args.claimers} | {result} |")
    return rows


def serve(site: Path, log: str) -> RunningServer:
    return start_server(
        site / "agents",
        site / log,
        "--config",
        str(site / "headend.yaml"),
        env={"HEADEND_ADMIN_KEY": ADMIN},
        access_log=True,
    )


async def updated_at(site: Path, store: str, ids: list[str]) -> dict[str, float]:
    if store.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(site / "headend.db") as db:
            rows = db.execute("SELECT id, updated_at FROM background_runs").fetchall()
    else:
        db = await asyncpg.connect(store)
        try:
            rows = await db.fetch("SELECT id, updated_at FROM background_runs")
        finally:
            await db.close()
    return {row[0]: float(row[1]) for row in rows if row[0] in ids}


def lapse(name: str, store: str, runs: int) -> str:
    upstream = FakeUpstream()
    upstream.start()
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        (site / "agents").mkdir()
        (site / "agents" / "worker.md").write_text(AGENT)
        ledger = site / "ledger.txt"
        config = CONFIG.format(upstream=upstream.url("tk"), store=store)
        (site / "headend.yaml").write_text(config)
        call = {
            "id": "c1",
            "name": "terminal",
            "arguments": json.dumps({"command": f"echo x >> {ledger}; sleep 60"}),
        }
        upstream.script("tk", *[Reply(text="", tool_calls=[call]) for _ in range(runs)])
        doomed = serve(site, "doomed.log")
        survivor = serve(site, "survivor.log") if not store.startswith("sqlite") else None
        headers = {"Authorization": f"Bearer {ADMIN}"}
        body = {"model": "worker", "input": "Work.", "background": True}
        try:
            ids = [
                httpx.post(f"{doomed.api}/responses", json=body, headers=headers).json()["id"]
                for _ in range(runs)
            ]
            until(lambda: ledger.exists() and len(ledger.read_text().split()) == runs)
            upstream.script("tk", *[Reply(text="Done.") for _ in range(runs)])
            time.sleep(1.5)  # a progress write or two after the tool started
            written = asyncio.run(updated_at(site, store, ids))
            doomed.process.send_signal(signal.SIGKILL)
            killed = time.time()
            doomed.process.wait(10)
            if survivor is None:
                survivor = serve(site, "again.log")
            going: dict[str, float] = {}

            def all_going() -> bool:
                for response_id in ids:
                    if response_id in going:
                        continue
                    found = httpx.get(f"{survivor.api}/responses/{response_id}", headers=headers)
                    if found.json()["status"] == "completed":
                        going[response_id] = time.time()
                return len(going) == runs

            until(all_going, timeout=60)
        finally:
            stop_server(doomed)
            if survivor is not None:
                stop_server(survivor)
            upstream.stop()
    after_lapse = [going[r] - (written[r] + LEASE) for r in ids]
    after_kill = [going[r] - killed for r in ids]
    return (
        f"| {name} | {runs} | {statistics.median(after_kill):.1f} | "
        f"{statistics.median(after_lapse):.2f} | {max(after_lapse):.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--claimers", type=int, default=4)
    parser.add_argument("--lapse-runs", type=int, default=8)
    args = parser.parse_args()
    with postgres_cluster(free_port()) as url:
        rows = [
            "| store | claimers | claims/s | claimed | claimed twice |",
            "|---|---:|---:|---:|---:|",
            *claim_rows(args, url),
            "",
            "| store | runs | kill → going again, median s | lease lapse → going again, "
            "median s | max s |",
            "|---|---:|---:|---:|---:|",
        ]
        lapsing = fresh_database(url, "lapse")
        rows.append(lapse("PostgreSQL, another instance", lapsing, args.lapse_runs))
        rows.append(
            lapse("SQLite, the same instance restarted", "sqlite:///headend.db", args.lapse_runs)
        )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
