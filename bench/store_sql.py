"""What writing knowledge's SQL once costs: the same statements through ``store.sql.Db`` (one
SQL text for both backends, ``?`` rewritten to ``$n`` for PostgreSQL, rows as tuples) and
straight through each backend's own driver call, as the older tables are written.

    .venv/bin/python bench/store_sql.py --n 20000

Reports µs per statement for a point read and a one-row write, on SQLite (a file) and on
PostgreSQL (a throwaway cluster from Debian's packages, on loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import free_port
from tests.postgres import postgres_cluster

from headend.store.postgres import PostgresStore
from headend.store.sqlite import SqliteStore

READ = "SELECT id, filename, bytes FROM files WHERE id = ?"
WRITE = "UPDATE files SET bytes = ? WHERE id = ?"


async def timed(n: int, call: Callable[[int], Awaitable[object]]) -> float:
    for i in range(200):  # warm
        await call(i)
    started = time.perf_counter()
    for i in range(n):
        await call(i)
    return (time.perf_counter() - started) / n * 1e6


async def seed(run: Callable[[str, tuple[object, ...]], Awaitable[object]]) -> None:
    await run(
        "INSERT INTO files (id, owner, filename, purpose, bytes, created_at, complete) "
        "VALUES (?, NULL, 'a.txt', 'assistants', 1, 0, 1)",
        ("file-1",),
    )


async def sqlite(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "b.db")
        await store.start()
        db = store.sql()
        await seed(db.execute)

        def read_direct(sqlite_db: object) -> object:
            return sqlite_db.execute(READ, ("file-1",)).fetchall()  # type: ignore[attr-defined]

        def write_direct(i: int) -> Callable[[object], object]:
            def work(sqlite_db: object) -> object:
                with sqlite_db:  # type: ignore[attr-defined]
                    return sqlite_db.execute(WRITE, (i, "file-1")).rowcount  # type: ignore[attr-defined]

            return work

        out = {
            "read, Db": await timed(n, lambda i: db.fetch(READ, ("file-1",))),
            "read, driver": await timed(n, lambda i: store._run(read_direct)),  # type: ignore[arg-type]
            "write, Db": await timed(n, lambda i: db.execute(WRITE, (i, "file-1"))),
            "write, driver": await timed(n, lambda i: store._run(write_direct(i))),  # type: ignore[arg-type]
        }
        await store.close()
        return out


async def postgres(url: str, n: int) -> dict[str, float]:
    store = PostgresStore(url)
    await store.start()
    db = store.sql()
    await seed(db.execute)
    pool = store._pool
    read_pg = READ.replace("?", "$1")
    write_pg = "UPDATE files SET bytes = $1 WHERE id = $2"
    out = {
        "read, Db": await timed(n, lambda i: db.fetch(READ, ("file-1",))),
        "read, driver": await timed(n, lambda i: pool.fetch(read_pg, "file-1")),
        "write, Db": await timed(n, lambda i: db.execute(WRITE, (i, "file-1"))),
        "write, driver": await timed(n, lambda i: pool.execute(write_pg, i, "file-1")),
    }
    await store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    results = {"SQLite": asyncio.run(sqlite(args.n))}
    with postgres_cluster(free_port()) as url:
        results["PostgreSQL"] = asyncio.run(postgres(url, args.n))
    print("| backend | statement | through Db (µs) | the driver's own call (µs) | Db / driver |")
    print("|---|---|---:|---:|---:|")
    for backend, found in results.items():
        for kind in ("read", "write"):
            ours, theirs = found[f"{kind}, Db"], found[f"{kind}, driver"]
            print(f"| {backend} | {kind} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} |")


if __name__ == "__main__":
    main()
