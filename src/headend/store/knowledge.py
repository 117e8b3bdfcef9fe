"""What knowledge keeps: files and their bytes, vector stores, their files (each an ingestion
job) and batches, and the chunks searched. Written once for both backends on ``store.sql``.

Whose a row is: ``owner`` is the key that made it (None in open mode); ``Owner.anyone``
reads every owner's (an admin). Another owner's row reads as missing.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from headend.store.knowledge_schema import vector_index
from headend.store.sql import Db, Params, Row
from headend.types import Json

PART_BYTES = 1 << 20  # a file's bytes are kept in rows of this size
COMMON = 0.05  # a word more than this share of chunks hold is left out of full-text search
HELD_WORDS = 50_000  # words whose counts are kept


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose rows a call may see: one owner's (None: open mode), or everyone's."""

    key: str | None
    anyone: bool = False


@dataclass(frozen=True, slots=True)
class FileRecord:
    id: str
    owner: str | None
    filename: str
    purpose: str
    bytes: int
    created_at: float
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class VectorStoreRecord:
    id: str
    owner: str | None
    name: str | None
    description: str | None
    metadata: Json
    chunking: Json
    embedding: str  # the embedding model its vectors come from
    dimensions: int | None  # None until its first file is embedded
    expires_after: Json | None
    expires_at: float | None
    last_active_at: float
    created_at: float
    generation: int  # grows each time its chunks change


@dataclass(frozen=True, slots=True)
class StoreFileRecord:
    vector_store_id: str
    file_id: str
    owner: str | None
    batch_id: str | None
    status: str  # in_progress, completed, failed or cancelled
    attributes: Json
    chunking: Json
    usage_bytes: int
    last_error_code: str | None
    last_error_message: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class BatchRecord:
    id: str
    vector_store_id: str
    created_at: float
    cancelled: bool


@dataclass(frozen=True, slots=True)
class FileCounts:
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def total(self) -> int:
        return self.in_progress + self.completed + self.failed + self.cancelled


@dataclass(frozen=True, slots=True)
class IngestJob:
    """A vector store's file, claimed for ingestion; ``attempt`` fences every write."""

    vector_store_id: str
    file_id: str
    attempt: int
    chunking: Json
    embedding: str
    dimensions: int | None


@dataclass(frozen=True, slots=True)
class NewChunk:
    seq: int
    text: str
    tokens: int
    vector: bytes  # little-endian float32


@dataclass(frozen=True, slots=True)
class ChunkText:
    id: int
    file_id: str
    seq: int
    text: str


_MINE = "(CAST(? AS INTEGER) = 1 OR owner IS NOT DISTINCT FROM CAST(? AS TEXT))"


def _mine(owner: Owner) -> tuple[int, str | None]:
    return (1 if owner.anyone else 0, owner.key)


def _json(value: Json | None) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _loads(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


FILE_COLUMNS = "id, owner, filename, purpose, bytes, created_at, expires_at"
STORE_COLUMNS = (
    "id, owner, name, description, metadata, chunking, embedding, dimensions, expires_after, "
    "expires_at, last_active_at, created_at, generation"
)
STORE_FILE_COLUMNS = (
    "vector_store_id, file_id, owner, batch_id, status, attributes, chunking, usage_bytes, "
    "last_error_code, last_error_message, created_at"
)


def _file(row: Row) -> FileRecord:
    id_, owner, filename, purpose, size, created, expires = row
    return FileRecord(id_, owner, filename, purpose, int(size), created, expires)


def _store(row: Row) -> VectorStoreRecord:
    (id_, owner, name, description, metadata, chunking, embedding, dims, after, expires_at,
     active, created, generation) = row  # fmt: skip
    return VectorStoreRecord(
        id_, owner, name, description, orjson.loads(metadata), orjson.loads(chunking),
        embedding, dims, _loads(after), expires_at, active, created, int(generation),
    )  # fmt: skip


def _store_file(row: Row) -> StoreFileRecord:
    (store_id, file_id, owner, batch_id, status, attributes, chunking, usage, code, message,
     created) = row  # fmt: skip
    return StoreFileRecord(
        store_id, file_id, owner, batch_id, status, orjson.loads(attributes),
        orjson.loads(chunking), int(usage), code, message, created,
    )  # fmt: skip


def _page(order: str, after: FileRecord | VectorStoreRecord | None) -> tuple[str, list[Any]]:
    """The cursor's clause: rows after (created_at, id) in ``order``."""
    if after is None:
        return "", []
    cmp = ">" if order == "asc" else "<"
    return (
        f" AND (created_at {cmp} ? OR (created_at = ? AND id {cmp} ?))",
        [after.created_at, after.created_at, after.id],
    )


class KnowledgeStore:
    def __init__(self, db: Db) -> None:
        self.db = db
        self._skip_locked = " FOR UPDATE SKIP LOCKED" if db.dialect.name == "postgres" else ""
        self._held: dict[str, tuple[int, int]] = {}  # word -> (chunks holding it, of how many)
        self._indexed: set[int] = set()  # dimension counts whose vector index is made

    # Files

    async def begin_file(self, record: FileRecord) -> None:
        """A file being uploaded: not listed, nor readable, until ``complete_file``."""
        await self.db.execute(
            f"INSERT INTO files ({FILE_COLUMNS}, complete) VALUES (?, ?, ?, ?, 0, ?, ?, 0)",
            (record.id, record.owner, record.filename, record.purpose, record.created_at,
             record.expires_at),
        )  # fmt: skip

    async def add_file_part(self, file_id: str, seq: int, data: bytes) -> None:
        await self.db.execute(
            "INSERT INTO file_parts (file_id, seq, data) VALUES (?, ?, ?)", (file_id, seq, data)
        )

    async def complete_file(self, file_id: str, size: int) -> None:
        await self.db.execute(
            "UPDATE files SET complete = 1, bytes = ? WHERE id = ?", (size, file_id)
        )

    async def drop_file(self, file_id: str) -> None:
        """Forget a file (an upload cut short, or deleted): its bytes go with it."""
        await self.db.execute("DELETE FROM files WHERE id = ?", (file_id,))

    async def file(self, file_id: str, owner: Owner) -> FileRecord | None:
        rows = await self.db.fetch(
            f"SELECT {FILE_COLUMNS} FROM files WHERE id = ? AND complete = 1 AND {_MINE}",
            (file_id, *_mine(owner)),
        )
        return _file(rows[0]) if rows else None

    async def files(
        self,
        owner: Owner,
        *,
        purpose: str | None,
        after: FileRecord | None,
        limit: int,
        order: str,
    ) -> list[FileRecord]:
        clause, values = _page(order, after)
        if purpose is not None:
            clause += " AND purpose = ?"
            values.append(purpose)
        direction = "ASC" if order == "asc" else "DESC"
        rows = await self.db.fetch(
            f"SELECT {FILE_COLUMNS} FROM files WHERE complete = 1 AND {_MINE}{clause} "
            f"ORDER BY created_at {direction}, id {direction} LIMIT ?",
            (*_mine(owner), *values, limit),
        )
        return [_file(row) for row in rows]

    async def file_bytes(self, file_id: str) -> AsyncIterator[bytes]:
        """The file's bytes, a part at a time (never the whole file in memory)."""
        seq = -1
        while True:
            rows = await self.db.fetch(
                "SELECT seq, data FROM file_parts WHERE file_id = ? AND seq > ? "
                "ORDER BY seq LIMIT 4",
                (file_id, seq),
            )
            for row in rows:
                yield bytes(row[1])
            if len(rows) < 4:
                return
            seq = rows[-1][0]

    async def owner_files(self, owner: str | None) -> tuple[int, int]:
        """How many files the owner keeps, and their bytes (uploads under way included)."""
        rows = await self.db.fetch(
            "SELECT count(*), COALESCE(SUM(bytes), 0) FROM files "
            "WHERE owner IS NOT DISTINCT FROM CAST(? AS TEXT)",
            (owner,),
        )
        return int(rows[0][0]), int(rows[0][1])

    async def delete_file(self, file_id: str) -> None:
        """The file, its bytes, and its place in every vector store (chunks included)."""
        await self.db.batch(
            [
                (
                    "UPDATE vector_stores SET generation = generation + 1 WHERE id IN ("
                    "SELECT vector_store_id FROM vector_store_files WHERE file_id = ?)",
                    (file_id,),
                ),
                ("DELETE FROM chunks WHERE file_id = ?", (file_id,)),
                ("DELETE FROM vector_store_files WHERE file_id = ?", (file_id,)),
                ("DELETE FROM files WHERE id = ?", (file_id,)),
            ]
        )

    # Vector stores

    async def create_store(
        self, record: VectorStoreRecord, files: Sequence[StoreFileRecord]
    ) -> None:
        """The store and its first files (each an ingestion job), together."""
        await self.db.batch(
            [
                (
                    f"INSERT INTO vector_stores ({STORE_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                    (
                        record.id,
                        record.owner,
                        record.name,
                        record.description,
                        _json(record.metadata),
                        _json(record.chunking),
                        record.embedding,
                        record.dimensions,
                        _json(record.expires_after),
                        record.expires_at,
                        record.last_active_at,
                        record.created_at,
                    ),
                ),
                *self._add_files(files),
            ]
        )

    def _add_files(self, files: Sequence[StoreFileRecord]) -> list[tuple[str, Params]]:
        """A file added again to a store starts over: its old chunks go."""
        out: list[tuple[str, Params]] = []
        for f in files:
            out.append(
                (
                    "DELETE FROM chunks WHERE vector_store_id = ? AND file_id = ?",
                    (f.vector_store_id, f.file_id),
                )
            )
            out.append(
                (
                    f"INSERT INTO vector_store_files ({STORE_FILE_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, 0, NULL, NULL, ?) "
                    "ON CONFLICT (vector_store_id, file_id) DO UPDATE SET "
                    "batch_id = excluded.batch_id, status = excluded.status, "
                    "attributes = excluded.attributes, chunking = excluded.chunking, "
                    "usage_bytes = 0, last_error_code = NULL, last_error_message = NULL, "
                    "created_at = excluded.created_at, claimed_by = NULL, claimed_until = NULL",
                    (
                        f.vector_store_id,
                        f.file_id,
                        f.owner,
                        f.batch_id,
                        f.status,
                        _json(f.attributes),
                        _json(f.chunking),
                        f.created_at,
                    ),
                )
            )
        if files:
            out.append((_BUMP, (files[0].vector_store_id,)))
        return out

    async def add_files(self, files: Sequence[StoreFileRecord], batch: BatchRecord | None) -> None:
        statements = self._add_files(files)
        if batch is not None:
            statements.insert(
                0,
                (
                    "INSERT INTO vector_store_batches (id, vector_store_id, created_at, cancelled) "
                    "VALUES (?, ?, ?, 0)",
                    (batch.id, batch.vector_store_id, batch.created_at),
                ),
            )
        await self.db.batch(statements)

    async def store(self, store_id: str, owner: Owner) -> VectorStoreRecord | None:
        rows = await self.db.fetch(
            f"SELECT {STORE_COLUMNS} FROM vector_stores WHERE id = ? AND {_MINE}",
            (store_id, *_mine(owner)),
        )
        return _store(rows[0]) if rows else None

    async def stores(
        self, owner: Owner, *, after: VectorStoreRecord | None, limit: int, order: str
    ) -> list[VectorStoreRecord]:
        clause, values = _page(order, after)
        direction = "ASC" if order == "asc" else "DESC"
        rows = await self.db.fetch(
            f"SELECT {STORE_COLUMNS} FROM vector_stores WHERE {_MINE}{clause} "
            f"ORDER BY created_at {direction}, id {direction} LIMIT ?",
            (*_mine(owner), *values, limit),
        )
        return [_store(row) for row in rows]

    async def update_store(self, record: VectorStoreRecord) -> None:
        await self.db.execute(
            "UPDATE vector_stores SET name = ?, metadata = ?, expires_after = ?, expires_at = ?, "
            "last_active_at = ? WHERE id = ?",
            (record.name, _json(record.metadata), _json(record.expires_after),
             record.expires_at, record.last_active_at, record.id),
        )  # fmt: skip

    async def touch_store(self, store_id: str, at: float, expires_at: float | None) -> None:
        await self.db.execute(
            "UPDATE vector_stores SET last_active_at = ?, expires_at = ? WHERE id = ?",
            (at, expires_at, store_id),
        )

    async def delete_store(self, store_id: str) -> None:
        await self.db.batch(
            [
                ("DELETE FROM chunks WHERE vector_store_id = ?", (store_id,)),
                ("DELETE FROM vector_store_files WHERE vector_store_id = ?", (store_id,)),
                ("DELETE FROM vector_store_batches WHERE vector_store_id = ?", (store_id,)),
                ("DELETE FROM vector_stores WHERE id = ?", (store_id,)),
            ]
        )

    async def counts(
        self, store_ids: Sequence[str], batch_id: str | None = None
    ) -> dict[str, tuple[FileCounts, int]]:
        """Each store's files by status and the bytes its chunks take (of one batch, when
        given): read from the files' own rows, so they are always true."""
        if not store_ids:
            return {}
        marks = ", ".join("?" for _ in store_ids)
        clause, values = "", list(store_ids)
        if batch_id is not None:
            clause, values = " AND batch_id = ?", [*values, batch_id]
        rows = await self.db.fetch(
            "SELECT vector_store_id, status, count(*), COALESCE(SUM(usage_bytes), 0) "
            f"FROM vector_store_files WHERE vector_store_id IN ({marks}){clause} "
            "GROUP BY vector_store_id, status",
            values,
        )
        found: dict[str, dict[str, int]] = {store_id: {} for store_id in store_ids}
        usage: dict[str, int] = dict.fromkeys(store_ids, 0)
        for store_id, status, count, used in rows:
            found[store_id][status] = int(count)
            usage[store_id] += int(used)
        return {
            store_id: (FileCounts(**{k: v for k, v in by.items() if k in _STATUSES}),
                       usage[store_id])
            for store_id, by in found.items()
        }  # fmt: skip

    async def store_file(self, store_id: str, file_id: str) -> StoreFileRecord | None:
        rows = await self.db.fetch(
            f"SELECT {STORE_FILE_COLUMNS} FROM vector_store_files "
            "WHERE vector_store_id = ? AND file_id = ?",
            (store_id, file_id),
        )
        return _store_file(rows[0]) if rows else None

    async def store_files(
        self,
        store_id: str,
        *,
        status: str | None,
        batch_id: str | None,
        after: StoreFileRecord | None,
        limit: int,
        order: str,
    ) -> list[StoreFileRecord]:
        clause, values = "", []
        if after is not None:
            cmp = ">" if order == "asc" else "<"
            clause = f" AND (created_at {cmp} ? OR (created_at = ? AND file_id {cmp} ?))"
            values = [after.created_at, after.created_at, after.file_id]
        if status is not None:
            clause += " AND status = ?"
            values.append(status)
        if batch_id is not None:
            clause += " AND batch_id = ?"
            values.append(batch_id)
        direction = "ASC" if order == "asc" else "DESC"
        rows = await self.db.fetch(
            f"SELECT {STORE_FILE_COLUMNS} FROM vector_store_files "
            f"WHERE vector_store_id = ?{clause} "
            f"ORDER BY created_at {direction}, file_id {direction} LIMIT ?",
            (store_id, *values, limit),
        )
        return [_store_file(row) for row in rows]

    async def set_attributes(self, store_id: str, file_id: str, attributes: Json) -> None:
        await self.db.batch(
            [
                (
                    "UPDATE vector_store_files SET attributes = ? "
                    "WHERE vector_store_id = ? AND file_id = ?",
                    (_json(attributes), store_id, file_id),
                ),
                (_BUMP, (store_id,)),
            ]
        )

    async def remove_file(self, store_id: str, file_id: str) -> None:
        await self.db.batch(
            [
                (
                    "DELETE FROM chunks WHERE vector_store_id = ? AND file_id = ?",
                    (store_id, file_id),
                ),
                (
                    "DELETE FROM vector_store_files WHERE vector_store_id = ? AND file_id = ?",
                    (store_id, file_id),
                ),
                (_BUMP, (store_id,)),
            ]
        )

    async def file_chunks(self, store_id: str, file_id: str) -> list[str]:
        rows = await self.db.fetch(
            "SELECT text FROM chunks WHERE vector_store_id = ? AND file_id = ? ORDER BY seq",
            (store_id, file_id),
        )
        return [row[0] for row in rows]

    async def batch(self, batch_id: str, store_id: str) -> BatchRecord | None:
        rows = await self.db.fetch(
            "SELECT id, vector_store_id, created_at, cancelled FROM vector_store_batches "
            "WHERE id = ? AND vector_store_id = ?",
            (batch_id, store_id),
        )
        if not rows:
            return None
        id_, store, created, cancelled = rows[0]
        return BatchRecord(id_, store, created, bool(cancelled))

    async def cancel_batch(self, batch_id: str) -> None:
        """The batch's files not yet ingested end ``cancelled`` (an ingester's late write is
        fenced off by their status)."""
        await self.db.batch(
            [
                ("UPDATE vector_store_batches SET cancelled = 1 WHERE id = ?", (batch_id,)),
                (
                    "UPDATE vector_store_files SET status = 'cancelled', claimed_by = NULL "
                    "WHERE batch_id = ? AND status = 'in_progress'",
                    (batch_id,),
                ),
            ]
        )

    # Ingestion

    async def claim_jobs(
        self, holder: str, now: float, until: float, limit: int, max_attempts: int
    ) -> list[IngestJob]:
        """Up to ``limit`` files waiting for ingestion that no live claim holds, each claimed
        by ``holder`` until ``until`` with the next attempt number; one whose claims lapsed
        ``max_attempts`` times already ends ``failed`` instead."""
        await self.db.execute(
            "UPDATE vector_store_files SET status = 'failed', last_error_code = 'server_error', "
            "last_error_message = 'Ingestion stopped before the file was read, too many times.' "
            "WHERE status = 'in_progress' AND attempts >= ? AND claimed_until < ?",
            (max_attempts, now),
        )
        rows = await self.db.fetch(
            "UPDATE vector_store_files SET attempts = attempts + 1, claimed_by = ?, "
            "claimed_until = ? WHERE (vector_store_id, file_id) IN ("
            "SELECT vector_store_id, file_id FROM vector_store_files "
            "WHERE status = 'in_progress' AND (claimed_until IS NULL OR claimed_until < ?) "
            f"ORDER BY created_at LIMIT ?{self._skip_locked}) "
            "RETURNING vector_store_id, file_id, attempts, chunking",
            (holder, until, now, limit),
        )
        jobs = []
        for store_id, file_id, attempt, chunking in rows:
            store = await self.db.fetch(
                "SELECT embedding, dimensions FROM vector_stores WHERE id = ?", (store_id,)
            )
            if store:
                jobs.append(
                    IngestJob(store_id, file_id, int(attempt), orjson.loads(chunking), *store[0])
                )
        return jobs

    async def renew_claim(self, job: IngestJob, until: float) -> bool:
        """Hold the job longer; False when it is no longer this claim's (claimed again since,
        cancelled, or removed)."""
        changed = await self.db.execute(
            f"UPDATE vector_store_files SET claimed_until = ? WHERE {_FENCE}",
            (until, job.vector_store_id, job.file_id, job.attempt),
        )
        return changed == 1

    async def finish_job(
        self, job: IngestJob, chunks: Sequence[NewChunk], usage_bytes: int, dimensions: int
    ) -> bool:
        """The file's chunks and its ``completed`` state, in one transaction and only while
        the claim is still the job's: False (and nothing written) otherwise."""
        fence = (job.vector_store_id, job.file_id, job.attempt)
        blob = self.db.dialect.blob
        columns, values = "", ""
        if self.db.vector_index and dimensions:
            await self._index(dimensions)
            columns, values = ", embedding", ", CAST(CAST(? AS TEXT) AS vector)"
        rows = [
            (
                job.vector_store_id, job.file_id, c.seq, c.text, c.tokens, c.vector,
                *((_vector_text(c.vector),) if columns else ()), *fence,
            )
            for c in chunks
        ]  # fmt: skip
        counts = await self.db.batch(
            [
                (
                    f"INSERT INTO chunks (vector_store_id, file_id, seq, text, tokens, vector"
                    f"{columns}) SELECT CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS INTEGER), "
                    f"CAST(? AS TEXT), CAST(? AS INTEGER), CAST(? AS {blob}){values} "
                    f"WHERE EXISTS (SELECT 1 FROM vector_store_files WHERE {_FENCE})",
                    rows,
                ),
                (
                    "UPDATE vector_stores SET generation = generation + 1, "
                    "dimensions = COALESCE(dimensions, ?) WHERE id = ? AND EXISTS ("
                    f"SELECT 1 FROM vector_store_files WHERE {_FENCE})",
                    (dimensions, job.vector_store_id, *fence),
                ),
                (
                    "UPDATE vector_store_files SET status = 'completed', usage_bytes = ?, "
                    f"claimed_by = NULL WHERE {_FENCE}",
                    (usage_bytes, *fence),
                ),
            ]
        )
        return counts[-1] == 1

    async def _index(self, dimensions: int) -> None:
        """pgvector's HNSW index for vectors of ``dimensions``, made the first time."""
        if dimensions in self._indexed:
            return
        try:
            await self.db.execute(vector_index(dimensions))
        except Exception as exc:  # another instance making it at the same moment
            if "already exists" not in str(exc):
                raise
        self._indexed.add(dimensions)

    async def nearest(
        self, store_id: str, vector: bytes, files: Sequence[str] | None, limit: int
    ) -> list[int]:
        """The ids of the store's chunks nearest ``vector`` (cosine), best first, by
        pgvector's index (``files``: only theirs)."""
        dimensions = len(vector) // 4
        clause, values = "", []
        if files is not None:
            clause, values = " AND file_id = ANY(CAST(? AS TEXT[]))", [list(files)]
        rows = await self.db.fetch(
            "SELECT id FROM chunks WHERE vector_store_id = ? AND "
            f"vector_dims(embedding) = {dimensions}{clause} "
            f"ORDER BY embedding::vector({dimensions}) <=> "
            f"CAST(CAST(? AS TEXT) AS vector({dimensions})) LIMIT ?",
            (store_id, *values, _vector_text(vector), limit),
        )
        return [int(row[0]) for row in rows]

    async def fail_job(self, job: IngestJob, code: str, message: str) -> bool:
        changed = await self.db.execute(
            "UPDATE vector_store_files SET status = 'failed', last_error_code = ?, "
            f"last_error_message = ?, claimed_by = NULL WHERE {_FENCE}",
            (code, message[:1000], job.vector_store_id, job.file_id, job.attempt),
        )
        return changed == 1

    async def waiting_jobs(self) -> int:
        rows = await self.db.fetch(
            "SELECT count(*) FROM vector_store_files WHERE status = 'in_progress'"
        )
        return int(rows[0][0])

    # Search

    async def generation(self, store_id: str) -> int | None:
        rows = await self.db.fetch("SELECT generation FROM vector_stores WHERE id = ?", (store_id,))
        return int(rows[0][0]) if rows else None

    async def vectors(self, store_id: str) -> list[tuple[int, str, bytes]]:
        """Every chunk's id, file and vector, of the store's completed files."""
        rows = await self.db.fetch(
            "SELECT c.id, c.file_id, c.vector FROM chunks c JOIN vector_store_files f "
            "ON f.vector_store_id = c.vector_store_id AND f.file_id = c.file_id "
            "WHERE c.vector_store_id = ? AND f.status = 'completed' ORDER BY c.id",
            (store_id,),
        )
        return [(int(id_), file_id, bytes(vector)) for id_, file_id, vector in rows]

    async def full_text(self, store_id: str, words: Sequence[str], limit: int) -> list[int]:
        """The ids of the store's chunks that hold any of ``words``, best first (BM25 on
        SQLite, ``ts_rank`` on PostgreSQL)."""
        if not words:
            return []
        if self.db.dialect.name == "sqlite":
            words = await self._uncommon(words)
            anyword = " OR ".join('"' + word.replace('"', '""') + '"' for word in words)
            store = '"' + store_id.replace('"', '""') + '"'
            rows = await self.db.fetch(
                "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? "
                "ORDER BY bm25(chunks_fts, 1.0, 0.0) LIMIT ?",
                (f"vector_store_id : {store} AND text : ({anyword})", limit),
            )
        else:
            query = " | ".join("'" + word.replace("'", "''") + "'" for word in words)
            rows = await self.db.fetch(
                "SELECT id FROM chunks, to_tsquery('simple', ?) q "
                "WHERE vector_store_id = ? AND words @@ q "
                "ORDER BY ts_rank_cd(words, q) DESC, id LIMIT ?",
                (query, store_id, limit),
            )
        return [int(row[0]) for row in rows]

    async def _uncommon(self, words: Sequence[str]) -> Sequence[str]:
        """``words`` without those more than ``COMMON`` of the chunks hold: their weight in
        BM25 is small, and scoring every chunk that holds one is most of a search's time
        (at least the three least common are kept). Counted over every store's chunks; a
        word's count is kept until the chunks have grown by a tenth (counting a common word
        reads its whole list)."""
        total = int((await self.db.fetch("SELECT COALESCE(MAX(id), 0) FROM chunks"))[0][0])
        held: dict[str, int] = {}
        asked = []
        for word in words:
            known = self._held.get(word)
            if known is not None and known[1] <= total <= known[1] * 1.1 + 100:
                held[word] = known[0]
            else:
                asked.append(word)
        if asked:
            found = await self.db.fetch(
                " UNION ALL ".join(
                    "SELECT term, doc FROM chunks_vocab WHERE term = ?" for _ in asked
                ),
                asked,
            )
            counted = {term: int(count) for term, count in found}
            if len(self._held) > HELD_WORDS:
                self._held.clear()
            for word in asked:
                held[word] = counted.get(word, 0)
                self._held[word] = (held[word], total)
        kept = [word for word in words if held.get(word, 0) <= COMMON * total]
        if len(kept) >= min(3, len(words)):
            return kept
        return sorted(words, key=lambda word: held.get(word, 0))[:3]

    async def chunk_files(self, ids: Sequence[int]) -> dict[int, str]:
        """Each chunk's file, by the chunk's id (its text left in the store)."""
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        rows = await self.db.fetch(
            f"SELECT id, file_id FROM chunks WHERE id IN ({marks})", list(ids)
        )
        return {int(chunk_id): file_id for chunk_id, file_id in rows}

    async def chunk_texts(self, ids: Sequence[int]) -> dict[int, ChunkText]:
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        rows = await self.db.fetch(
            f"SELECT id, file_id, seq, text FROM chunks WHERE id IN ({marks})", list(ids)
        )
        return {int(r[0]): ChunkText(int(r[0]), r[1], int(r[2]), r[3]) for r in rows}

    async def completed_files(self, store_id: str) -> dict[str, tuple[str, Json]]:
        """The store's completed files: each one's filename and attributes."""
        rows = await self.db.fetch(
            "SELECT f.file_id, COALESCE(x.filename, f.file_id), f.attributes "
            "FROM vector_store_files f LEFT JOIN files x ON x.id = f.file_id "
            "WHERE f.vector_store_id = ? AND f.status = 'completed'",
            (store_id,),
        )
        return {file_id: (name, orjson.loads(attrs)) for file_id, name, attrs in rows}


def _vector_text(vector: bytes) -> str:
    """A little-endian float32 vector as pgvector's text: ``[x,y,…]``."""
    values = struct.unpack(f"<{len(vector) // 4}f", vector)
    return "[" + ",".join(f"{value:.8g}" for value in values) + "]"


_STATUSES = frozenset({"in_progress", "completed", "failed", "cancelled"})
_BUMP = "UPDATE vector_stores SET generation = generation + 1 WHERE id = ?"
_FENCE = "vector_store_id = ? AND file_id = ? AND attempts = ? AND status = 'in_progress'"
