"""Files and vector stores as OpenAI's APIs define them, for one caller at a time.

A file or store is its key's: another key reads it as missing (404), an admin reads them all.
Vector stores' ``file_counts`` and ``status`` are read from their files' rows each time, so
they are never out of step with the files.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import IO

from headend.config import KnowledgeSettings
from headend.errors import (
    InvalidRequest,
    ObjectNotFound,
    PayloadTooLarge,
    StorageQuotaExceeded,
    UnsupportedValue,
)
from headend.knowledge.chunking import static_strategy
from headend.knowledge.embedder import Embedders
from headend.knowledge.ingest import Ingester
from headend.knowledge.search import Hit, Searcher, SearchOptions, Weights
from headend.observability import audit_log
from headend.observability.metrics import Metrics
from headend.schemas.openai.vector_stores_api import (
    CreateBatch,
    CreateStoreFile,
    CreateVectorStore,
    SearchRequest,
    UpdateVectorStore,
    file_counts,
    file_object,
    filter_wire,
)
from headend.store.base import Store
from headend.store.knowledge import (
    PART_BYTES,
    BatchRecord,
    FileCounts,
    FileRecord,
    KnowledgeStore,
    Owner,
    StoreFileRecord,
    VectorStoreRecord,
)
from headend.types import Json

DAY = 86_400.0


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class Caller:
    """Whose files and stores a request reaches: its key (None in open mode), or every
    key's for an admin."""

    key: str | None
    admin: bool = False

    @property
    def owner(self) -> Owner:
        return Owner(self.key, anyone=self.admin)


class Knowledge:
    def __init__(
        self,
        store: KnowledgeStore,
        embedders: Embedders,
        ingester: Ingester,
        searcher: Searcher,
        settings: KnowledgeSettings,
        metrics: Metrics,
        audit: Store,
    ) -> None:
        self.audit = audit
        self.store = store
        self.embedders = embedders
        self.ingester = ingester
        self.searcher = searcher
        self.settings = settings
        self.metrics = metrics

    # Files

    async def upload(
        self, caller: Caller, filename: str, purpose: str, data: IO[bytes], size: int,
        expires_seconds: int | None = None,
    ) -> Json:  # fmt: skip
        if size > self.settings.max_file_bytes:
            raise PayloadTooLarge(
                f"The file is larger than the limit of {self.settings.max_file_bytes} bytes."
            )
        await self._check_quota(caller.key, size)
        now = time.time()
        record = FileRecord(
            new_id("file-"), caller.key, filename, purpose, size, now,
            None if expires_seconds is None else now + expires_seconds,
        )  # fmt: skip
        await self.keep_file(record, data)
        await audit_log.record(
            self.audit, caller.key, "file.upload", record.id, filename=filename,
            purpose=purpose, bytes=size,
        )  # fmt: skip
        return _file(record)

    async def keep_file(self, record: FileRecord, data: IO[bytes]) -> None:
        """The file's bytes into the store, a part at a time; listed once all are there."""
        await self.store.begin_file(record)
        try:
            seq = 0
            while part := data.read(PART_BYTES):
                await self.store.add_file_part(record.id, seq, part)
                seq += 1
            await self.store.complete_file(record.id, record.bytes)
        except BaseException:
            await self.store.drop_file(record.id)
            raise

    async def _check_quota(self, key: str | None, size: int) -> None:
        count, used = await self.store.owner_files(key)
        files, most = self.settings.max_files_per_key, self.settings.max_bytes_per_key
        if files is not None and count + 1 > files:
            raise StorageQuotaExceeded(f"This key keeps {count} files, its limit is {files}.")
        if most is not None and used + size > most:
            raise StorageQuotaExceeded(
                f"This file would take this key's files to {used + size} bytes; its limit "
                f"is {most}."
            )

    async def file(self, caller: Caller, file_id: str) -> FileRecord:
        found = await self.store.file(file_id, caller.owner)
        if found is None:
            raise ObjectNotFound("file", file_id, param="file_id")
        return found

    async def file_json(self, caller: Caller, file_id: str) -> Json:
        return _file(await self.file(caller, file_id))

    async def files(
        self, caller: Caller, purpose: str | None, after: str | None, limit: int, order: str
    ) -> tuple[list[Json], bool]:
        anchor = await self.file(caller, after) if after else None
        found = await self.store.files(
            caller.owner, purpose=purpose, after=anchor, limit=limit + 1, order=order
        )
        return [_file(f) for f in found[:limit]], len(found) > limit

    async def delete_file(self, caller: Caller, file_id: str) -> None:
        found = await self.file(caller, file_id)
        await self.store.delete_file(found.id)
        await audit_log.record(
            self.audit, caller.key, "file.delete", found.id, filename=found.filename,
            owner=found.owner,
        )  # fmt: skip

    # Vector stores

    async def create_store(self, caller: Caller, request: CreateVectorStore) -> Json:
        for file_id in dict.fromkeys(request.file_ids):
            await self.file(caller, file_id)  # a 404 naming it, and nothing made
        model = request.embedding_model or self.settings.embedding
        if not self.embedders.known(model):
            raise UnsupportedValue(
                f"'{model}' is neither 'builtin' nor a model route that serves embeddings.",
                param="embedding_model",
            )
        now = time.time()
        chunking = request.chunking_strategy.wire() if request.chunking_strategy else None
        after = request.expires_after.model_dump() if request.expires_after else None
        record = VectorStoreRecord(
            new_id("vs_"), caller.key, request.name, request.description,
            request.metadata or {}, static_strategy(chunking),
            self.embedders.recorded_name(model), None, after,
            _expires(after, now), now, now, 0,
        )  # fmt: skip
        files = [
            self._entry(record, caller, file_id, None, None, None)
            for file_id in dict.fromkeys(request.file_ids)
        ]
        await self.store.create_store(record, files)
        if files:
            self.ingester.wake()
        return await self._store_json(record)

    async def vector_store(self, caller: Caller, store_id: str) -> VectorStoreRecord:
        found = await self.store.store(store_id, caller.owner)
        if found is None:
            raise ObjectNotFound("vector store", store_id, param="vector_store_id")
        return found

    async def store_json(self, caller: Caller, store_id: str) -> Json:
        return await self._store_json(await self.vector_store(caller, store_id))

    async def _store_json(self, record: VectorStoreRecord) -> Json:
        counts = await self.store.counts([record.id])
        return _store(record, *counts[record.id])

    async def stores(
        self, caller: Caller, after: str | None, limit: int, order: str
    ) -> tuple[list[Json], bool]:
        anchor = await self.vector_store(caller, after) if after else None
        found = await self.store.stores(caller.owner, after=anchor, limit=limit + 1, order=order)
        shown = found[:limit]
        counts = await self.store.counts([s.id for s in shown])
        return [_store(s, *counts[s.id]) for s in shown], len(found) > limit

    async def update_store(self, caller: Caller, store_id: str, request: UpdateVectorStore) -> Json:
        record = await self.vector_store(caller, store_id)
        given = request.model_fields_set
        after = (
            (request.expires_after.model_dump() if request.expires_after else None)
            if "expires_after" in given
            else record.expires_after
        )
        now = time.time()
        updated = replace(
            record,
            name=request.name if "name" in given else record.name,
            metadata=(request.metadata or {}) if "metadata" in given else record.metadata,
            expires_after=after,
            expires_at=_expires(after, now),
            last_active_at=now,
        )
        await self.store.update_store(updated)
        return await self._store_json(updated)

    async def delete_store(self, caller: Caller, store_id: str) -> None:
        record = await self.vector_store(caller, store_id)
        await self.store.delete_store(record.id)
        self.searcher.forget(record.id)

    # A vector store's files

    async def add_file(self, caller: Caller, store_id: str, request: CreateStoreFile) -> Json:
        record = await self.vector_store(caller, store_id)
        await self.file(caller, request.file_id)
        chunking = request.chunking_strategy.wire() if request.chunking_strategy else None
        entry = self._entry(record, caller, request.file_id, request.attributes, chunking, None)
        await self.store.add_files([entry], None)
        self.ingester.wake()
        return await self.store_file_json(caller, store_id, request.file_id)

    def _entry(
        self, record: VectorStoreRecord, caller: Caller, file_id: str, attributes: Json | None,
        chunking: Json | None, batch_id: str | None,
    ) -> StoreFileRecord:  # fmt: skip
        return StoreFileRecord(
            record.id, file_id, caller.key, batch_id, "in_progress", attributes or {},
            static_strategy(chunking) if chunking else record.chunking, 0, None, None,
            time.time(),
        )  # fmt: skip

    async def store_file(self, caller: Caller, store_id: str, file_id: str) -> StoreFileRecord:
        await self.vector_store(caller, store_id)
        found = await self.store.store_file(store_id, file_id)
        if found is None:
            raise ObjectNotFound("vector store file", file_id, param="file_id")
        return found

    async def store_file_json(self, caller: Caller, store_id: str, file_id: str) -> Json:
        return _store_file(await self.store_file(caller, store_id, file_id))

    async def store_files(
        self, caller: Caller, store_id: str, *, status: str | None, batch_id: str | None,
        after: str | None, limit: int, order: str,
    ) -> tuple[list[Json], bool]:  # fmt: skip
        await self.vector_store(caller, store_id)
        anchor = await self.store_file(caller, store_id, after) if after else None
        found = await self.store.store_files(
            store_id, status=status, batch_id=batch_id, after=anchor, limit=limit + 1,
            order=order,
        )  # fmt: skip
        return [_store_file(f) for f in found[:limit]], len(found) > limit

    async def set_attributes(
        self, caller: Caller, store_id: str, file_id: str, attributes: Json | None
    ) -> Json:
        await self.store_file(caller, store_id, file_id)
        await self.store.set_attributes(store_id, file_id, attributes or {})
        return await self.store_file_json(caller, store_id, file_id)

    async def remove_file(self, caller: Caller, store_id: str, file_id: str) -> None:
        await self.store_file(caller, store_id, file_id)
        await self.store.remove_file(store_id, file_id)

    async def file_content(self, caller: Caller, store_id: str, file_id: str) -> Json:
        found = await self.store_file(caller, store_id, file_id)
        texts = await self.store.file_chunks(store_id, file_id)
        return {
            "object": "vector_store.file_content.page",
            "file_id": found.file_id,
            "filename": (
                await self.store.file(file_id, Owner(None, anyone=True)) or _GONE
            ).filename,
            "attributes": found.attributes,
            "data": [{"type": "text", "text": text} for text in texts],
            "has_more": False,
            "next_page": None,
        }

    # Batches

    async def create_batch(self, caller: Caller, store_id: str, request: CreateBatch) -> Json:
        record = await self.vector_store(caller, store_id)
        shared = request.chunking_strategy.wire() if request.chunking_strategy else None
        wanted: dict[str, tuple[Json | None, Json | None]] = {}
        for file_id in request.file_ids or []:
            wanted[file_id] = (request.attributes, shared)
        for entry in request.files or []:
            own = entry.chunking_strategy.wire() if entry.chunking_strategy else shared
            wanted[entry.file_id] = (entry.attributes, own)
        if not wanted:
            raise InvalidRequest("A batch needs at least one file.", param="file_ids")
        for file_id in wanted:
            await self.file(caller, file_id)
        batch = BatchRecord(new_id("vsfb_"), record.id, time.time(), False)
        entries = [
            self._entry(record, caller, file_id, attributes, chunking, batch.id)
            for file_id, (attributes, chunking) in wanted.items()
        ]
        await self.store.add_files(entries, batch)
        self.ingester.wake()
        return await self._batch_json(batch)

    async def batch(self, caller: Caller, store_id: str, batch_id: str) -> BatchRecord:
        await self.vector_store(caller, store_id)
        found = await self.store.batch(batch_id, store_id)
        if found is None:
            raise ObjectNotFound("file batch", batch_id, param="batch_id")
        return found

    async def batch_json(self, caller: Caller, store_id: str, batch_id: str) -> Json:
        return await self._batch_json(await self.batch(caller, store_id, batch_id))

    async def cancel_batch(self, caller: Caller, store_id: str, batch_id: str) -> Json:
        found = await self.batch(caller, store_id, batch_id)
        await self.store.cancel_batch(found.id)
        return await self._batch_json(replace(found, cancelled=True))

    async def _batch_json(self, batch: BatchRecord) -> Json:
        counts, _usage = (await self.store.counts([batch.vector_store_id], batch.id))[
            batch.vector_store_id
        ]
        if counts.in_progress:
            status = "in_progress"
        elif batch.cancelled:
            status = "cancelled"
        elif counts.failed and not counts.completed:
            status = "failed"
        else:
            status = "completed"
        return {
            "id": batch.id,
            "object": "vector_store.files_batch",
            "created_at": int(batch.created_at),
            "vector_store_id": batch.vector_store_id,
            "status": status,
            "file_counts": _counts(counts),
        }

    # Search

    async def usable_stores(
        self, caller: Caller, store_ids: Sequence[str], param: str
    ) -> tuple[VectorStoreRecord, ...]:
        """The caller's stores of these ids; a 404 naming the first that is not one."""
        found = []
        for store_id in dict.fromkeys(store_ids):
            record = await self.store.store(store_id, caller.owner)
            if record is None:
                raise ObjectNotFound("vector store", store_id, param=param)
            found.append(record)
        return tuple(found)

    async def search_stores(
        self, stores: Sequence[VectorStoreRecord], query: str, options: SearchOptions
    ) -> list[Hit]:
        """The best hits across ``stores`` (scores are on one scale: see ``search``)."""
        started = time.perf_counter()
        hits: list[Hit] = []
        for record in stores:
            hits += await self.searcher.search(
                record,
                [query],
                filters=options.filters,
                max_results=options.max_num_results,
                score_threshold=options.score_threshold,
                weights=options.weights,
            )
        self.metrics.knowledge_search.observe(time.perf_counter() - started)
        hits.sort(key=lambda hit: (-hit.score, hit.chunk_id))
        return hits[: options.max_num_results]

    async def search(self, caller: Caller, store_id: str, request: SearchRequest) -> Json:
        record = await self.vector_store(caller, store_id)
        queries = request.queries()
        if not any(q.strip() for q in queries):
            raise InvalidRequest("The query is empty.", param="query")
        ranking = request.ranking_options
        started = time.perf_counter()
        hits = await self.searcher.search(
            record,
            queries,
            filters=filter_wire(request.filters),
            max_results=request.max_num_results,
            score_threshold=float(ranking.score_threshold) if ranking else 0.0,
            weights=Weights(),
        )
        self.metrics.knowledge_search.observe(time.perf_counter() - started)
        now = time.time()
        await self.store.touch_store(record.id, now, _expires(record.expires_after, now))
        return {
            "object": "vector_store.search_results.page",
            "search_query": queries,
            "data": [
                {
                    "file_id": hit.file_id,
                    "filename": hit.filename,
                    "score": hit.score,
                    "attributes": hit.attributes,
                    "content": [{"type": "text", "text": hit.text}],
                }
                for hit in hits
            ],
            "has_more": False,
            "next_page": None,
        }


_GONE = FileRecord("", None, "", "", 0, 0.0, None)


def _expires(after: Json | None, since: float) -> float | None:
    return None if not after else since + float(after["days"]) * DAY


def _file(record: FileRecord) -> Json:
    return file_object(
        record.id, record.bytes, record.created_at, record.filename, record.purpose,
        record.expires_at,
    )  # fmt: skip


def _counts(counts: FileCounts) -> dict[str, int]:
    return file_counts(counts.in_progress, counts.completed, counts.failed, counts.cancelled)


def _store(record: VectorStoreRecord, counts: FileCounts, usage: int) -> Json:
    if record.expires_at is not None and record.expires_at <= time.time():
        status = "expired"
    else:
        status = "in_progress" if counts.in_progress else "completed"
    return {
        "id": record.id,
        "object": "vector_store",
        "created_at": int(record.created_at),
        "name": record.name or "",
        "description": record.description,
        "usage_bytes": usage,
        "file_counts": _counts(counts),
        "status": status,
        "expires_after": record.expires_after,
        "expires_at": None if record.expires_at is None else int(record.expires_at),
        "last_active_at": int(record.last_active_at),
        "metadata": record.metadata,
    }


def _store_file(record: StoreFileRecord) -> Json:
    error = (
        None
        if record.last_error_code is None
        else {"code": record.last_error_code, "message": record.last_error_message or ""}
    )
    return {
        "id": record.file_id,
        "object": "vector_store.file",
        "usage_bytes": record.usage_bytes,
        "created_at": int(record.created_at),
        "vector_store_id": record.vector_store_id,
        "status": record.status,
        "last_error": error,
        "chunking_strategy": record.chunking,
        "attributes": record.attributes,
    }
