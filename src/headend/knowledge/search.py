"""Hybrid search over a vector store: full text (BM25 on SQLite's FTS5, ``ts_rank_cd`` on
PostgreSQL) and vectors (cosine: pgvector's HNSW index where PostgreSQL has it, else exact,
numpy over the store's vectors held in memory), fused by reciprocal rank.

A result's ``score`` is its fused score over the best a chunk could have (first in every
list), so 1.0 means ranked first by words and by meaning, and ``score_threshold`` reads on
that scale. Vectors are loaded once per store and kept while the store's ``generation`` is
unchanged; an instance sharing the store sees another's writes at its next search.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from headend.knowledge.embedder import Embedders, Vectors
from headend.knowledge.filters import matches
from headend.store.knowledge import KnowledgeStore, VectorStoreRecord
from headend.types import Json

RRF_K = 60  # the constant of reciprocal rank fusion (Cormack et al.)
CANDIDATES = 100  # from each list, before fusion
MAX_WORDS = 64
WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Hit:
    file_id: str
    filename: str
    score: float
    attributes: Json
    text: str
    chunk_id: int


@dataclass(frozen=True, slots=True)
class Weights:
    """How much each list counts in the fusion (the Responses tool's ``hybrid_search``)."""

    embedding: float = 1.0
    text: float = 1.0


@dataclass(frozen=True, slots=True)
class SearchOptions:
    """A ``file_search`` tool's settings, as the request or the agent file gives them."""

    max_num_results: int = 10
    filters: Json | None = None
    score_threshold: float = 0.0
    weights: Weights = Weights()


@dataclass(slots=True)
class _Loaded:
    """A store as searched: its completed files, and every chunk's id, file and vector."""

    generation: int
    files: dict[str, tuple[str, Json]]  # file id -> (filename, attributes)
    ids: npt.NDArray[np.int64]
    file_of: npt.NDArray[np.int32]  # each chunk's file, as an index into ``names``
    names: list[str]  # file ids
    matrix: Vectors
    indexed: bool = False  # the vectors stay in the database, searched by its index


def one_blas_thread() -> None:
    """numpy's BLAS on one thread, for the whole process: a search's product of the query
    and the store's vectors is bound by memory, not arithmetic, and BLAS threads waiting for
    work take the cores the embedding model and the store's thread need (measured: p95 at
    100k chunks 59 ms with BLAS's threads, 47 with one; bench/knowledge_search.py)."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    threadpool_limits(1, user_api="blas")


class Searcher:
    def __init__(self, store: KnowledgeStore, embedders: Embedders) -> None:
        one_blas_thread()
        self._store = store
        self._embedders = embedders
        self._loaded: dict[str, _Loaded] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def _load(self, store_id: str) -> _Loaded | None:
        """The store as it is now: read again only when its generation has moved on."""
        generation = await self._store.generation(store_id)
        if generation is None:
            self._loaded.pop(store_id, None)
            return None
        loaded = self._loaded.get(store_id)
        if loaded is not None and loaded.generation == generation:
            return loaded
        async with self._locks.setdefault(store_id, asyncio.Lock()):
            loaded = self._loaded.get(store_id)
            if loaded is not None and loaded.generation == generation:
                return loaded
            files = await self._store.completed_files(store_id)
            indexed = self._store.db.vector_index
            rows = [] if indexed else await self._store.vectors(store_id)
            names = list(files)
            index = {file_id: n for n, file_id in enumerate(names)}
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            file_of = np.fromiter((index.get(r[1], -1) for r in rows), np.int32, len(rows))
            matrix = (
                np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(len(rows), -1)
                if rows
                else np.zeros((0, 0), dtype=np.float32)
            )
            loaded = _Loaded(generation, files, ids, file_of, names, matrix, indexed)
            self._loaded[store_id] = loaded
            return loaded

    def forget(self, store_id: str) -> None:
        self._loaded.pop(store_id, None)

    async def search(
        self,
        record: VectorStoreRecord,
        queries: Sequence[str],
        *,
        filters: Json | None = None,
        max_results: int = 10,
        score_threshold: float = 0.0,
        weights: Weights = Weights(),
    ) -> list[Hit]:
        loaded = await self._load(record.id)
        if loaded is None or not queries:
            return []
        files = loaded.files
        allowed: set[str] | None = None  # None: every file
        mask: npt.NDArray[np.bool_] | None = None
        if filters is not None:
            allowed = {f for f, (_name, attrs) in files.items() if matches(attrs, filters)}
            if not allowed:
                return []
            picked = [n for n, file_id in enumerate(loaded.names) if file_id in allowed]
            mask = np.isin(loaded.file_of, np.array(picked, dtype=np.int32))
        # The queries are embedded and their nearest chunks found (on threads of their own)
        # while their words are searched (on the store's).
        meant = None
        if weights.embedding > 0 and (len(loaded.ids) or loaded.indexed):
            meant = asyncio.ensure_future(self._meanings(record, loaded, queries, mask, allowed))
        try:
            worded = [
                await self._words(record.id, query, allowed) if weights.text > 0 else []
                for query in queries
            ]
            nearest = await meant if meant is not None else None
        finally:
            if meant is not None and not meant.done():
                meant.cancel()
        # Each query is searched on its own (words and meaning fused); a chunk keeps its best.
        best: dict[int, float] = {}
        for n in range(len(queries)):
            lists: list[tuple[float, list[int]]] = []
            if nearest is not None:
                lists.append((weights.embedding, nearest[n]))
            if weights.text > 0:
                lists.append((weights.text, worded[n]))
            for chunk_id, score in _fused(lists).items():
                best[chunk_id] = max(score, best.get(chunk_id, 0.0))
        top = sorted(best.items(), key=lambda item: (-item[1], item[0]))
        picked_chunks = [(c, s) for c, s in top if s >= score_threshold][:max_results]
        texts = await self._store.chunk_texts([c for c, _ in picked_chunks])
        hits = []
        for chunk_id, score in picked_chunks:
            chunk = texts.get(chunk_id)
            if chunk is None or chunk.file_id not in files:
                continue  # removed meanwhile
            name, attributes = files[chunk.file_id]
            hits.append(Hit(chunk.file_id, name, round(score, 6), attributes, chunk.text, chunk_id))
        return hits

    async def _meanings(
        self,
        record: VectorStoreRecord,
        loaded: _Loaded,
        queries: Sequence[str],
        mask: npt.NDArray[np.bool_] | None,
        allowed: set[str] | None,
    ) -> list[list[int]]:
        """Each query's nearest chunks by meaning, best first: by the database's index, or
        over the vectors held here."""
        asked = await self._embedders.get(record.embedding).embed(list(queries))
        if loaded.indexed:
            files = sorted(allowed) if allowed is not None else None
            return [
                await self._store.nearest(
                    record.id, vector.astype("<f4").tobytes(), files, CANDIDATES
                )
                for vector in asked
            ]
        return await asyncio.to_thread(lambda: [_nearest(loaded, vector, mask) for vector in asked])

    async def _words(self, store_id: str, query: str, allowed: set[str] | None) -> list[int]:
        """The chunks holding the query's words, best first, of the allowed files."""
        if allowed is None:
            return await self._store.full_text(store_id, _words([query]), CANDIDATES)
        # With a filter, read further down the list: filtered-out chunks are dropped after.
        found = await self._store.full_text(store_id, _words([query]), CANDIDATES * 4)
        file_of = await self._store.chunk_files(found)
        return [c for c in found if file_of.get(c) in allowed][:CANDIDATES]


def _fused(lists: list[tuple[float, list[int]]]) -> dict[int, float]:
    """Reciprocal rank fusion, over the best a chunk could score (first in every list)."""
    best = sum(weight for weight, _ in lists) / (RRF_K + 1)
    fused: dict[int, float] = {}
    for weight, ranked in lists:
        for rank, chunk_id in enumerate(ranked, 1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (RRF_K + rank)
    return {chunk_id: score / best for chunk_id, score in fused.items()} if best else {}


def _nearest(loaded: _Loaded, vector: Vectors, mask: npt.NDArray[np.bool_] | None) -> list[int]:
    if loaded.matrix.shape[1] != vector.shape[0]:
        return []
    scores = loaded.matrix @ vector
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    count = min(CANDIDATES, int(mask.sum()) if mask is not None else len(scores))
    if count == 0:
        return []
    top = np.argpartition(-scores, count - 1)[:count]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [int(loaded.ids[i]) for i in top]


def _words(queries: Sequence[str]) -> list[str]:
    seen: dict[str, None] = {}
    for query in queries:
        for word in WORD.findall(query.lower()):
            seen.setdefault(word, None)
    return list(seen)[:MAX_WORDS]
