"""Search latency and memory at scale, on SQLite: a store of N chunks (the judged corpus's
passages over and over, so full text sees real words and long posting lists; random unit
vectors, which cost exact search the same as real ones), searched in-process with the built-in
model embedding each query, as ``/v1/vector_stores/{id}/search`` does.

    .venv/bin/python bench/knowledge_search.py --data ../shared/data/retrieval/msmarco \\
        --chunks 10000,100000

Reports p50 and p95 per search (the first search, which loads the store's vectors, apart),
and the process's RSS with the vectors loaded.
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.knowledge import lines, rss_mib

from headend.knowledge.embedder import DIMENSIONS, Embedders
from headend.knowledge.search import Searcher
from headend.store.knowledge import (
    KnowledgeStore,
    NewChunk,
    Owner,
    StoreFileRecord,
    VectorStoreRecord,
)
from headend.store.sqlite import SqliteStore

FILES = 100  # the chunks are spread over this many files
STATIC = {"type": "static", "static": {"max_chunk_size_tokens": 256, "chunk_overlap_tokens": 0}}


async def build(store: KnowledgeStore, passages: list[str], chunks: int) -> VectorStoreRecord:
    now = time.time()
    record = VectorStoreRecord(
        "vs_bench", None, "bench", None, {}, STATIC, "all-MiniLM-L6-v2", None, None, None,
        now, now, 0,
    )  # fmt: skip
    entries = [
        StoreFileRecord(
            "vs_bench", f"file-{n}", None, None, "in_progress", {}, STATIC, 0, None, None, now
        )
        for n in range(FILES)
    ]
    await store.create_store(record, entries)
    jobs = await store.claim_jobs("bench", now, now + 3600, FILES, 3)
    rng = np.random.default_rng(7)
    per = chunks // FILES
    for number, job in enumerate(sorted(jobs, key=lambda j: int(j.file_id.split("-")[1]))):
        vectors = rng.standard_normal((per, DIMENSIONS)).astype("<f4")
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        rows = [
            NewChunk(
                seq, passages[(number * per + seq) % len(passages)], 60, vectors[seq].tobytes()
            )
            for seq in range(per)
        ]
        await store.finish_job(job, rows, 0, DIMENSIONS)
    found = await store.store("vs_bench", Owner(None))
    assert found is not None
    return found


async def measure(data: Path, chunks: int, repeat: int) -> None:
    passages = [json.loads(line)["text"] for line in lines(data / "corpus.jsonl")]
    queries = [json.loads(line)["text"] for line in lines(data / "queries.jsonl")]
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SqliteStore(Path(tmp) / "search.db")
        await sqlite.start()
        try:
            store = KnowledgeStore(sqlite.sql())
            started = time.monotonic()
            record = await build(store, passages, chunks)
            built = time.monotonic() - started
            embedders = Embedders(2, None)
            searcher = Searcher(store, embedders)
            await embedders.get("builtin").embed(["warm the model"])
            before = rss_mib_self()
            t0 = time.perf_counter()
            await searcher.search(record, [queries[0]], max_results=10)
            first = (time.perf_counter() - t0) * 1000
            times = []
            for _ in range(repeat):
                for query in queries:
                    t0 = time.perf_counter()
                    await searcher.search(record, [query], max_results=10)
                    times.append(time.perf_counter() - t0)
            times.sort()
            p50 = statistics.median(times) * 1000
            p95 = times[int(len(times) * 0.95)] * 1000
            print(
                f"| {chunks:,} | {p50:.1f} | {p95:.1f} | {first:.0f} | "
                f"{rss_mib_self():.0f} (+{rss_mib_self() - before:.0f}) | {built:.0f} s |"
            )
            embedders.close()
        finally:
            await sqlite.close()


def rss_mib_self() -> float:
    import os

    return rss_mib(os.getpid())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--chunks", default="10000,100000")
    parser.add_argument("--repeat", type=int, default=4)
    args = parser.parse_args()
    print(
        "| chunks | p50 ms | p95 ms | first search ms (loads vectors) | RSS MiB (vectors) | build |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for chunks in (int(c) for c in args.chunks.split(",")):
        asyncio.run(measure(args.data, chunks, args.repeat))


if __name__ == "__main__":
    main()
