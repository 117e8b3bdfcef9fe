"""Knowledge's tables on both backends, through the one implementation written for both:
claims that fence every write, counts that follow the files, full-text search, bytes in
parts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from headend.store.base import Store
from headend.store.knowledge import (
    BatchRecord,
    FileRecord,
    KnowledgeStore,
    NewChunk,
    Owner,
    StoreFileRecord,
    VectorStoreRecord,
)
from headend.store.postgres import PostgresStore
from headend.store.sqlite import SqliteStore
from tests.store.test_store import wipe

STATIC = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}}


@pytest.fixture(params=["sqlite", "postgres", "pgvector"])
async def knowledge(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[KnowledgeStore]:
    backend: Store
    if request.param == "sqlite":
        backend = SqliteStore(tmp_path / "k.db")
    else:
        url = request.getfixturevalue(f"{request.param}_url")
        await wipe(url)
        backend = PostgresStore(url)
    await backend.start()
    assert backend.sql().vector_index == (request.param == "pgvector")
    yield KnowledgeStore(backend.sql())
    await backend.close()


async def a_file(store: KnowledgeStore, file_id: str, owner: str | None, data: bytes) -> None:
    await store.begin_file(
        FileRecord(file_id, owner, f"{file_id}.txt", "assistants", 0, time.time(), None)
    )
    for seq in range(0, len(data), 3):
        await store.add_file_part(file_id, seq // 3, data[seq : seq + 3])
    await store.complete_file(file_id, len(data))


async def a_store(
    store: KnowledgeStore, store_id: str, owner: str | None, files: list[str]
) -> None:
    now = time.time()
    record = VectorStoreRecord(
        store_id, owner, "kb", None, {}, STATIC, "m", None, None, None, now, now, 0
    )
    entries = [
        StoreFileRecord(
            store_id, f, owner, None, "in_progress", {"n": i}, STATIC, 0, None, None, now + i
        )
        for i, f in enumerate(files)
    ]
    await store.create_store(record, entries)


def chunk(seq: int, text: str) -> NewChunk:
    vector = np.zeros(4, dtype="<f4")
    vector[seq % 4] = 1.0
    return NewChunk(seq, text, len(text.split()), vector.tobytes())


async def test_files_belong_to_their_owner_and_keep_their_bytes(knowledge: KnowledgeStore) -> None:
    await a_file(knowledge, "file-a", "k1", b"hello, parts!")
    await knowledge.begin_file(
        FileRecord("file-b", "k1", "b.txt", "assistants", 0, time.time(), None)
    )
    assert await knowledge.file("file-a", Owner("k1")) is not None
    assert await knowledge.file("file-a", Owner("k2")) is None
    assert await knowledge.file("file-a", Owner("k2", anyone=True)) is not None
    assert await knowledge.file("file-b", Owner("k1")) is None  # an upload under way
    assert b"".join([p async for p in knowledge.file_bytes("file-a")]) == b"hello, parts!"
    listed = await knowledge.files(Owner("k1"), purpose=None, after=None, limit=10, order="asc")
    assert [f.id for f in listed] == ["file-a"]
    assert await knowledge.owner_files("k1") == (2, 13)
    await knowledge.drop_file("file-b")
    assert await knowledge.owner_files("k1") == (1, 13)


async def test_a_claim_fences_every_write_and_lapses(knowledge: KnowledgeStore) -> None:
    for name in ("f1", "f2"):
        await a_file(knowledge, name, None, b"text")
    await a_store(knowledge, "vs_1", None, ["f1", "f2"])
    now = time.time()
    first = await knowledge.claim_jobs("one", now, now + 30, 1, 3)
    assert [(j.file_id, j.attempt) for j in first] == [("f1", 1)]
    # Claimed: no one else gets it until the claim lapses.
    second = await knowledge.claim_jobs("two", now, now + 30, 5, 3)
    assert [j.file_id for j in second] == ["f2"]
    later = await knowledge.claim_jobs("two", now + 31, now + 61, 5, 3)
    assert [(j.file_id, j.attempt) for j in later] == [("f1", 2), ("f2", 2)]
    # The first claim's writes are refused, and leave nothing.
    assert not await knowledge.renew_claim(first[0], now + 40)
    assert not await knowledge.finish_job(first[0], [chunk(0, "stale words")], 10, 4)
    assert await knowledge.file_chunks("vs_1", "f1") == []
    assert await knowledge.finish_job(later[0], [chunk(0, "fresh words"), chunk(1, "more")], 10, 4)
    assert await knowledge.file_chunks("vs_1", "f1") == ["fresh words", "more"]
    assert await knowledge.fail_job(later[1], "invalid_file", "broken")
    counts, usage = (await knowledge.counts(["vs_1"]))["vs_1"]
    assert (counts.completed, counts.failed, counts.in_progress, usage) == (1, 1, 0, 10)
    stored = await knowledge.store("vs_1", Owner(None))
    assert stored is not None
    assert stored.dimensions == 4


async def test_a_file_whose_claims_keep_lapsing_ends_failed(knowledge: KnowledgeStore) -> None:
    await a_file(knowledge, "f1", None, b"text")
    await a_store(knowledge, "vs_1", None, ["f1"])
    now = time.time()
    for attempt in range(3):
        assert (
            len(
                await knowledge.claim_jobs("x", now + attempt * 100, now + attempt * 100 + 30, 1, 3)
            )
            == 1
        )
    assert await knowledge.claim_jobs("x", now + 1000, now + 1030, 1, 3) == []
    found = await knowledge.store_file("vs_1", "f1")
    assert found is not None
    assert (found.status, found.last_error_code) == ("failed", "server_error")


async def test_cancelling_a_batch_fences_off_its_ingester(knowledge: KnowledgeStore) -> None:
    await a_file(knowledge, "f1", None, b"text")
    await a_store(knowledge, "vs_1", None, [])
    now = time.time()
    batch = BatchRecord("vsfb_1", "vs_1", now, False)
    entry = StoreFileRecord(
        "vs_1", "f1", None, "vsfb_1", "in_progress", {}, STATIC, 0, None, None, now
    )
    await knowledge.add_files([entry], batch)
    (job,) = await knowledge.claim_jobs("x", now, now + 30, 1, 3)
    await knowledge.cancel_batch("vsfb_1")
    assert not await knowledge.finish_job(job, [chunk(0, "late")], 4, 4)
    counts, _ = (await knowledge.counts(["vs_1"], "vsfb_1"))["vs_1"]
    assert (counts.cancelled, counts.total) == (1, 1)
    assert await knowledge.file_chunks("vs_1", "f1") == []


async def test_full_text_finds_words_in_the_store_only(knowledge: KnowledgeStore) -> None:
    for name in ("f1", "f2"):
        await a_file(knowledge, name, None, b"text")
    await a_store(knowledge, "vs_1", None, ["f1"])
    await a_store(knowledge, "vs_2", None, ["f2"])
    now = time.time()
    jobs = {j.file_id: j for j in await knowledge.claim_jobs("x", now, now + 30, 5, 3)}
    await knowledge.finish_job(
        jobs["f1"], [chunk(0, "the lighthouse keeper"), chunk(1, "a quiet harbour")], 1, 4
    )
    await knowledge.finish_job(jobs["f2"], [chunk(0, "the lighthouse in the other store")], 1, 4)
    found = await knowledge.full_text("vs_1", ["lighthouse", "o'brien", 'say "hi"'], 10)
    texts = await knowledge.chunk_texts(found)
    assert await knowledge.chunk_files(found) == {chunk_id: "f1" for chunk_id in found}
    assert [texts[i].text for i in found] == ["the lighthouse keeper"]
    assert await knowledge.full_text("vs_1", ["nothing"], 10) == []
    vectors = await knowledge.vectors("vs_1")
    assert [(f, int(np.frombuffer(v, dtype="<f4").argmax())) for _, f, v in vectors] == [
        ("f1", 0),
        ("f1", 1),
    ]
    generation = await knowledge.generation("vs_1")
    await knowledge.set_attributes("vs_1", "f1", {"k": "v"})
    assert await knowledge.generation("vs_1") == (generation or 0) + 1
    await knowledge.delete_file("f1")
    assert await knowledge.full_text("vs_1", ["lighthouse"], 10) == []
    assert (await knowledge.counts(["vs_1"]))["vs_1"][0].total == 0
    await knowledge.delete_store("vs_2")
    assert await knowledge.store("vs_2", Owner(None)) is None


@pytest.fixture
async def pgvector(pgvector_url: str) -> AsyncIterator[KnowledgeStore]:
    await wipe(pgvector_url)
    backend = PostgresStore(pgvector_url)
    await backend.start()
    yield KnowledgeStore(backend.sql())
    await backend.close()


async def test_nearest_by_the_vector_index_honours_files(pgvector: KnowledgeStore) -> None:
    """pgvector only: elsewhere vectors are searched in memory (``knowledge.search``)."""
    knowledge = pgvector
    for name in ("f1", "f2"):
        await a_file(knowledge, name, None, b"text")
    await a_store(knowledge, "vs_1", None, ["f1", "f2"])
    now = time.time()
    jobs = {j.file_id: j for j in await knowledge.claim_jobs("x", now, now + 30, 5, 3)}
    await knowledge.finish_job(jobs["f1"], [chunk(0, "a"), chunk(1, "b")], 1, 4)
    await knowledge.finish_job(jobs["f2"], [chunk(2, "c"), chunk(3, "d")], 1, 4)
    texts = {c.text: i for i, c in (await knowledge.chunk_texts(list(range(1, 9)))).items()}
    toward = np.array([0.0, 0.0, 1.0, 0.1], dtype="<f4")
    toward /= np.linalg.norm(toward)
    found = await knowledge.nearest("vs_1", toward.tobytes(), None, 4)
    assert found[0] == texts["c"]  # the chunk whose vector points the same way
    only = await knowledge.nearest("vs_1", toward.tobytes(), ["f1"], 4)
    assert set(only) == {texts["a"], texts["b"]}
    (made,) = await knowledge.db.fetch(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'chunks_embedding_4'"
    )
    assert "USING hnsw" in made[0]
    assert "vector_cosine_ops" in made[0]
