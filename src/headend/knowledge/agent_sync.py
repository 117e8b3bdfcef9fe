"""Agents' own vector stores kept in step with the files their ``knowledge:`` names.

Every ``POLL`` seconds each instance looks at the files (their sizes and times, cheap) and,
for an agent whose files changed since it last looked, brings the agent's store in step: a
new or changed file is stored and ingested (a changed one replaces its old version once
added), a file no longer named is removed with its chunks. A file is known by its path and
its content's sha256, which its vector store file carries as attributes (``path``,
``sha256``), and its id is derived from both, so instances sharing a store that sync at once
make the same rows, never two.

The store and its files belong to the owner ``agent:<id>``: no key sees them through the
API (an admin does); they are reached only through the agent.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from headend.knowledge.chunking import static_strategy
from headend.knowledge.documents import Knowledge
from headend.knowledge.embedder import sha256_of
from headend.store.knowledge import FileRecord, Owner, StoreFileRecord, VectorStoreRecord

log = logging.getLogger(__name__)

POLL = 2.0
ANYONE = Owner(None, anyone=True)


@dataclass(frozen=True, slots=True)
class Wanted:
    """What an agent's store should hold: its files, each as (name, path), embedded by
    ``embedding`` (the built-in model, or a model route)."""

    files: Sequence[tuple[str, Path]]
    embedding: str


WantedFiles = Callable[[], Mapping[str, Wanted]]  # by agent id


def agent_store_id(agent_id: str) -> str:
    return f"vs_agent_{agent_id}"


def agent_owner(agent_id: str) -> str:
    return f"agent:{agent_id}"


def _seen(wanted: Wanted) -> tuple[tuple[str, int, int], ...]:
    out = [(wanted.embedding, 0, 0)]
    for name, path in wanted.files:
        try:
            stat = path.stat()
        except OSError:
            continue
        out.append((name, stat.st_size, stat.st_mtime_ns))
    return tuple(out)


class AgentKnowledgeSync:
    def __init__(self, knowledge: Knowledge, wanted: WantedFiles) -> None:
        self.knowledge = knowledge
        self.wanted = wanted
        self._looked: dict[str, tuple[tuple[str, int, int], ...]] = {}

    async def run(self) -> None:
        while True:
            await self.once()
            await asyncio.sleep(POLL)

    async def once(self) -> None:
        """One look at every agent's files; an agent that fails is tried again next time."""
        for agent_id, wanted in self.wanted().items():
            seen = await asyncio.to_thread(_seen, wanted)
            if self._looked.get(agent_id) == seen:
                continue
            try:
                await self.sync(agent_id, wanted)
            except Exception:
                log.exception("keeping agent %s's knowledge in step failed", agent_id)
                continue
            self._looked[agent_id] = seen

    async def sync(self, agent_id: str, wanted: Wanted) -> None:
        store = self.knowledge.store
        store_id = agent_store_id(agent_id)
        owner = agent_owner(agent_id)
        files = wanted.files
        embedding = self.knowledge.embedders.recorded_name(wanted.embedding)
        record = await store.store(store_id, ANYONE)
        if record is not None and record.embedding != embedding:
            # vectors of two models never share a store: the agent's is made again
            log.info("agent %s's knowledge: embedded again by %s", agent_id, embedding)
            await store.delete_store(store_id)
            record = None
        if record is None:
            if not files:
                return
            now = time.time()
            record = VectorStoreRecord(
                store_id, owner, f"{agent_id} knowledge", None, {"agent": agent_id},
                static_strategy(None), embedding, None, None, None, now, now, 0,
            )  # fmt: skip
            await store.create_store(record, [])
        have = {
            str(f.attributes.get("path")): f
            for f in await store.store_files(
                store_id, status=None, batch_id=None, after=None, limit=1_000_000, order="asc"
            )
        }
        added = 0
        for name, path in files:
            digest = await asyncio.to_thread(sha256_of, path)
            current = have.pop(name, None)
            if current is not None and current.attributes.get("sha256") == digest:
                continue
            file_id = (
                "file-agent-"
                + hashlib.sha256(f"{agent_id}\0{name}\0{digest}".encode()).hexdigest()[:24]
            )
            if await store.file(file_id, ANYONE) is None:
                size = path.stat().st_size
                stored = FileRecord(file_id, owner, name, "assistants", size, time.time(), None)
                with path.open("rb") as data:
                    await self.knowledge.keep_file(stored, data)
            entry = StoreFileRecord(
                store_id, file_id, owner, None, "in_progress",
                {"path": name, "sha256": digest}, record.chunking, 0, None, None, time.time(),
            )  # fmt: skip
            await store.add_files([entry], None)
            added += 1
            if current is not None:
                await store.delete_file(current.file_id)
        for gone in have.values():
            await store.delete_file(gone.file_id)
        if added:
            self.knowledge.ingester.wake()
        if added or have:
            log.info(
                "agent %s's knowledge: %d file(s) to ingest, %d removed", agent_id, added, len(have)
            )
