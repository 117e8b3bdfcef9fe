"""Ingestion: a vector store's files read, chunked, embedded and indexed, as durable jobs.

Every instance sharing the store runs an ``Ingester``. It claims files waiting in
``in_progress`` (a claim lapses ``lease`` seconds after it was last renewed), works on at most
``concurrency`` at once, renews its claims every third of ``lease``, and commits a file's
chunks with its ``completed`` state in one transaction fenced by its claim's number: an
instance killed mid-file leaves nothing half written, and its file is claimed again once the
claim lapses (by any instance, or the same one restarted). A file whose claims lapse
``MAX_ATTEMPTS`` times ends ``failed``; one that cannot be read ends ``failed`` at once with
``invalid_file`` or ``unsupported_file``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
import uuid

import numpy as np

from headend.knowledge.chunking import chunk
from headend.knowledge.embedder import Embedders
from headend.knowledge.readers import Unreadable, read_text
from headend.observability.metrics import Metrics
from headend.store.knowledge import IngestJob, KnowledgeStore, NewChunk, Owner

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
POLL = 1.0  # seconds between looks for waiting files when nothing woke the ingester
EMBED_BATCH = 64  # chunks embedded between two checks of the claim
SPOOL = 8 << 20  # a file's bytes are held in memory up to this, on disk beyond


class Lost(Exception):
    """The claim is no longer this job's: stop, write nothing."""


class Ingester:
    def __init__(
        self,
        store: KnowledgeStore,
        embedders: Embedders,
        metrics: Metrics,
        concurrency: int = 1,
        lease: float = 30.0,
    ) -> None:
        self._lease = lease
        self._store = store
        self._embedders = embedders
        self._metrics = metrics
        self._slots = concurrency
        self._holder = f"ingest-{uuid.uuid4().hex[:12]}"
        self._woken = asyncio.Event()
        self._working: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Look for waiting files now (one was just added)."""
        self._woken.set()

    async def run(self) -> None:
        try:
            while True:
                free = self._slots - len(self._working)
                if free > 0:
                    await self._claim(free)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._woken.wait(), POLL)
                self._woken.clear()
        finally:
            for task in self._working:
                task.cancel()
            await asyncio.gather(*self._working, return_exceptions=True)

    async def _claim(self, free: int) -> None:
        now = time.time()
        try:
            jobs = await self._store.claim_jobs(
                self._holder, now, now + self._lease, free, MAX_ATTEMPTS
            )
            self._metrics.knowledge_queue.set(await self._store.waiting_jobs())
        except Exception:  # the store away: the next round tries again
            log.exception("claiming files to ingest failed")
            return
        for job in jobs:
            task = asyncio.create_task(self._ingest(job))
            self._working.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._working.discard(task)
        self._woken.set()  # a slot is free

    async def _ingest(self, job: IngestJob) -> None:
        try:
            await self._work(job)
        except Lost:
            self._metrics.knowledge_files.labels("lost").inc()
        except Unreadable as exc:
            if await self._store.fail_job(job, exc.code, exc.message):
                self._metrics.knowledge_files.labels("failed").inc()
        except asyncio.CancelledError:
            raise  # shutting down: the claim lapses and the file is taken up again
        except Exception:  # left for its claim to lapse: tried again, up to MAX_ATTEMPTS
            log.exception("ingesting %s into %s failed", job.file_id, job.vector_store_id)

    async def _work(self, job: IngestJob) -> None:
        renewed = time.monotonic()

        async def keep() -> None:
            nonlocal renewed
            if time.monotonic() - renewed >= self._lease / 3:
                if not await self._store.renew_claim(job, time.time() + self._lease):
                    raise Lost
                renewed = time.monotonic()

        found = await self._store.file(job.file_id, Owner(None, anyone=True))
        if found is None:
            raise Unreadable("invalid_file", "The file was deleted before it was read.")
        with tempfile.SpooledTemporaryFile(max_size=SPOOL) as spool:
            async for part in self._store.file_bytes(job.file_id):
                spool.write(part)
                await keep()
            spool.seek(0)
            text = await asyncio.to_thread(read_text, found.filename, spool)
        tokens = self._embedders.tokens
        spans = await asyncio.to_thread(tokens.spans, text)
        pieces = chunk(text, spans, job.chunking)
        embedder = self._embedders.get(job.embedding)
        vectors = []
        for first in range(0, len(pieces), EMBED_BATCH):
            batch = [p.text for p in pieces[first : first + EMBED_BATCH]]
            vectors.append(await embedder.embed(batch))
            await keep()
        matrix = np.concatenate(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)
        dimensions = int(matrix.shape[1]) if matrix.size else (job.dimensions or 0)
        if job.dimensions is not None and dimensions != job.dimensions:
            raise Unreadable(
                "server_error",
                f"The embedding model gave {dimensions} dimensions; the store holds "
                f"{job.dimensions}.",
            )
        rows = [
            NewChunk(seq, piece.text, piece.tokens, matrix[seq].astype("<f4").tobytes())
            for seq, piece in enumerate(pieces)
        ]
        usage = sum(len(piece.text.encode()) + dimensions * 4 for piece in pieces)
        if not await self._store.finish_job(job, rows, usage, dimensions):
            raise Lost
        self._metrics.knowledge_files.labels("completed").inc()
        self._metrics.knowledge_chunks.inc(len(rows))
