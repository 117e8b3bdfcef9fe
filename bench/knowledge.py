"""Knowledge, measured as a user runs it: a judged corpus uploaded through the openai SDK to a
headend on its defaults (SQLite, the built-in embedding model), ingested, and searched.

Reports, in one run:
- ingestion: every passage a file, from the first upload to the batch ``completed``
  (files/s and chunks/s, the server's CPU over that time);
- quality: nDCG@10 of headend's search (``/v1/vector_stores/{id}/search``) beside BM25
  computed here (k1 0.9, b 0.4, ``\\w+`` lower-cased, title and text together), and of each
  half of headend's hybrid alone (words only, vectors only: in-process on the same store);
- search latency through the API: p50 and p95 over the queries, repeated.

    .venv/bin/python bench/knowledge.py --data ../shared/data/retrieval/msmarco

The data directory holds ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/test.tsv`` (BEIR's
layout). Read on "\\n" only, as the data's README asks.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gateway import cpu_seconds
from bench.sites import served_site

ADMIN = "bench-admin-0123456789abcdef0123456789"
WORD = re.compile(r"\w+")


def lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def load(data: Path) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    corpus = {}
    for line in lines(data / "corpus.jsonl"):
        doc = json.loads(line)
        corpus[doc["_id"]] = (doc.get("title", "") + " " + doc["text"]).strip()
    queries = {q["_id"]: q["text"] for q in map(json.loads, lines(data / "queries.jsonl"))}
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    for line in lines(data / "qrels" / "test.tsv")[1:]:
        query, doc, score = line.split("\t")[:3]
        qrels[query][doc] = int(score)
    return corpus, queries, dict(qrels)


def ndcg10(ranked: list[str], judged: dict[str, int]) -> float:
    gain = sum((2 ** judged.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(judged.values(), reverse=True)[:10]
    best = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return gain / best if best else 0.0


def bm25(corpus: dict[str, str], queries: dict[str, str]) -> dict[str, list[str]]:
    k1, b = 0.9, 0.4
    docs = {d: Counter(WORD.findall(t.lower())) for d, t in corpus.items()}
    lengths = {d: sum(c.values()) for d, c in docs.items()}
    average = sum(lengths.values()) / len(lengths)
    df: Counter[str] = Counter()
    for counts in docs.values():
        df.update(counts.keys())
    n = len(docs)
    ranked = {}
    for qid, text in queries.items():
        scores: dict[str, float] = defaultdict(float)
        for word in set(WORD.findall(text.lower())):
            if word not in df:
                continue
            idf = math.log(1 + (n - df[word] + 0.5) / (df[word] + 0.5))
            for d, counts in docs.items():
                tf = counts.get(word)
                if tf:
                    norm = tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[d] / average))
                    scores[d] += idf * norm
        ranked[qid] = [d for d, _ in sorted(scores.items(), key=lambda x: -x[1])[:10]]
    return ranked


def searched(
    client: openai.OpenAI,
    store_id: str,
    queries: dict[str, str],
    doc_of: Callable[[Any], str],
    repeat: int,
) -> tuple[dict[str, list[str]], tuple[float, float]]:
    """Each query's top ten documents (``doc_of`` names a hit's), and the p50 and p95 in ms
    of ``repeat`` rounds of searches through the API."""
    got: dict[str, list[str]] = {}
    latencies = []
    for round_ in range(repeat):
        for qid, text in queries.items():
            t0 = time.perf_counter()
            page = client.vector_stores.search(
                vector_store_id=store_id, query=text, max_num_results=10
            )
            latencies.append(time.perf_counter() - t0)
            if round_ == 0:
                got[qid] = [doc_of(hit) for hit in page.data]
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    return got, (p50, latencies[int(len(latencies) * 0.95)] * 1000)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=5, help="search rounds for latency")
    args = parser.parse_args()
    corpus, queries, qrels = load(args.data)
    judged = {q: t for q, t in queries.items() if q in qrels}
    print(f"{len(corpus)} passages, {len(judged)} judged queries")
    baseline = bm25(corpus, judged)
    base = mean([ndcg10(baseline[q], qrels[q]) for q in judged])
    with served_site("store: sqlite:///bench.db\n", ADMIN) as server:
        client = openai.OpenAI(base_url=server.api, api_key=ADMIN, max_retries=2)
        pid = server.process.pid
        cpu0 = cpu_seconds(pid)
        started = time.monotonic()
        names = {}
        for doc_id, text in corpus.items():
            made = client.files.create(
                file=(f"{doc_id}.txt", io.BytesIO(text.encode())), purpose="assistants"
            )
            names[made.id] = doc_id
        uploaded = time.monotonic() - started
        store = client.vector_stores.create(name="bench")
        ids = list(names)
        for first in range(0, len(ids), 2000):
            client.vector_stores.file_batches.create(
                vector_store_id=store.id, file_ids=ids[first : first + 2000]
            )
        while True:
            counts = client.vector_stores.retrieve(store.id).file_counts
            if counts.in_progress == 0:
                break
            time.sleep(1)
        took = time.monotonic() - started
        cpu = cpu_seconds(pid) - cpu0
        chunks = counts.completed  # one chunk each: every passage fits a chunk
        print(
            f"ingested {counts.completed} files ({counts.failed} failed) in {took:.1f} s "
            f"(uploads {uploaded:.1f} s): {counts.completed / took:.1f} files/s, "
            f"server CPU {cpu:.0f} s; RSS {rss_mib(pid):.0f} MiB"
        )
        got, (p50, p95) = searched(
            client, store.id, judged, lambda hit: names[hit.file_id], args.repeat
        )
        hybrid = mean([ndcg10(got[q], qrels[q]) for q in judged])
        db = Path(server.log).parent / "bench.db"
        halves = asyncio.run(in_process(db, store.id, judged, names, qrels))
        print(f"server RSS after searching {rss_mib(pid):.0f} MiB")
    print(f"BM25 (here)          nDCG@10 {base:.3f}")
    print(f"headend hybrid (API) nDCG@10 {hybrid:.3f}  ({hybrid / base:.2f}x BM25)")
    for label, value in halves.items():
        print(f"headend {label:<12} nDCG@10 {value:.3f}")
    searches = args.repeat * len(judged)
    print(f"search p50 {p50:.1f} ms, p95 {p95:.1f} ms over {searches} searches")
    print(f"chunks/s {chunks / took:.1f}")


async def in_process(
    db: Path,
    store_id: str,
    queries: dict[str, str],
    names: dict[str, str],
    qrels: dict[str, dict[str, int]],
) -> dict[str, float]:
    """Each half of the hybrid alone, on the store the server made."""
    from headend.knowledge.embedder import Embedders
    from headend.knowledge.search import Searcher, Weights
    from headend.store.knowledge import KnowledgeStore, Owner
    from headend.store.sqlite import SqliteStore

    sqlite = SqliteStore(db)
    await sqlite.start()
    try:
        store = KnowledgeStore(sqlite.sql())
        searcher = Searcher(store, Embedders(2, None))
        record = await store.store(store_id, Owner(None, anyone=True))
        assert record is not None
        out = {}
        for label, weights in (("words only", Weights(0, 1)), ("vectors only", Weights(1, 0))):
            scores = []
            for qid, text in queries.items():
                hits = await searcher.search(record, [text], max_results=10, weights=weights)
                scores.append(ndcg10([names[h.file_id] for h in hits], qrels[qid]))
            out[label] = mean(scores)
        return out
    finally:
        await sqlite.close()


if __name__ == "__main__":
    main()
