"""An agent's own store follows its files and the model that embeds them: a store made by
another model is made again, so two models' vectors never share it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from headend.config import KnowledgeSettings
from headend.knowledge.agent_sync import AgentKnowledgeSync, Wanted, agent_store_id
from headend.knowledge.documents import Knowledge
from headend.knowledge.embedder import BUILTIN_MODEL, Embedders
from headend.knowledge.ingest import Ingester
from headend.knowledge.search import Searcher
from headend.observability.metrics import Metrics
from headend.store.knowledge import KnowledgeStore, Owner
from headend.store.sqlite import SqliteStore

ANYONE = Owner(None, anyone=True)


async def never(name: str, texts: Sequence[str]) -> list[list[float]]:
    raise AssertionError("nothing is embedded here: the files are only queued")


@pytest.fixture
async def knowledge(tmp_path: Path) -> AsyncIterator[Knowledge]:
    sqlite = SqliteStore(tmp_path / "k.db")
    await sqlite.start()
    store = KnowledgeStore(sqlite.sql())
    embedders = Embedders(1, never, lambda name: name == "other-model")
    metrics = Metrics()
    yield Knowledge(
        store,
        embedders,
        Ingester(store, embedders, metrics),
        Searcher(store, embedders),
        KnowledgeSettings(),
        metrics,
        sqlite,
    )
    await sqlite.close()


async def test_the_agents_store_follows_its_files_and_its_model(
    knowledge: Knowledge, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("first")
    (docs / "b.md").write_text("second")
    files = [("docs/a.md", docs / "a.md"), ("docs/b.md", docs / "b.md")]
    sync = AgentKnowledgeSync(knowledge, lambda: {})
    store_id = agent_store_id("helper")

    async def held() -> dict[str, str]:
        found = await knowledge.store.store_files(
            store_id, status=None, batch_id=None, after=None, limit=10, order="asc"
        )
        return {str(f.attributes["path"]): str(f.attributes["sha256"]) for f in found}

    await sync.sync("helper", Wanted(files, "builtin"))
    record = await knowledge.store.store(store_id, ANYONE)
    assert record is not None
    assert (record.owner, record.embedding) == ("agent:helper", BUILTIN_MODEL)
    first = await held()
    assert set(first) == {"docs/a.md", "docs/b.md"}
    # A changed file replaces its old version; a file no longer named goes.
    (docs / "a.md").write_text("first, changed")
    await sync.sync("helper", Wanted(files[:1], "builtin"))
    now = await held()
    assert set(now) == {"docs/a.md"}
    assert now["docs/a.md"] != first["docs/a.md"]
    # Another model: the store is made again, every file queued for it.
    await sync.sync("helper", Wanted(files, "other-model"))
    again = await knowledge.store.store(store_id, ANYONE)
    assert again is not None
    assert again.embedding == "other-model"
    assert set(await held()) == {"docs/a.md", "docs/b.md"}
    counts, _usage = (await knowledge.store.counts([store_id]))[store_id]
    assert counts.in_progress == 2
