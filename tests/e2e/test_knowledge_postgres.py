"""Knowledge on PostgreSQL, with pgvector and without: two headend instances sharing one
database serve the same files and stores (bytes uploaded to one are ingested, searched and
downloaded through the other) and an agent's knowledge answers with its citations; full text
there is PostgreSQL's own (a generated tsvector)."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import issue, make_site, serve
from tests.postgres import fresh_database
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

PREFIX = "kpg"
AGENT = "---\nmodel: up/pg\nknowledge: [docs/]\n---\nAnswer from the docs.\n"


@pytest.fixture(scope="module", params=["postgres", "pgvector"])
def pair(
    request: pytest.FixtureRequest,
    upstream: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningServer, RunningServer, str]]:
    """Two instances on one database: PostgreSQL as Debian ships it (vectors searched in
    memory), or with pgvector (searched by its HNSW index)."""
    # a database of its own: the keys it issues must not meet other tests' open-mode sites
    postgres_url = fresh_database(request.getfixturevalue(f"{request.param}_url"), "knowledge")
    sites = []
    for name in ("one", "two"):
        root = make_site(
            tmp_path_factory.mktemp(f"pg-{name}"),
            upstream,
            PREFIX,
            {"keeper": AGENT},
            f'store: "{postgres_url}"\n',
        )
        (root / "agents" / "docs").mkdir()
        (root / "agents" / "docs" / "lamp.md").write_text("The lamp is lit at dusk by the keeper.")
        sites.append(root)
    one = serve(sites[0])
    two = serve(sites[1])
    yield one, two, postgres_url
    stop_server(one)
    stop_server(two)


def test_two_instances_share_files_stores_and_search(
    pair: tuple[RunningServer, RunningServer, str], request: pytest.FixtureRequest
) -> None:
    one, two, url = pair
    secret = str(issue(one, name="pg-user", scopes=["chat"])["secret"])
    first = openai.OpenAI(base_url=one.api, api_key=secret, max_retries=1)
    second = openai.OpenAI(base_url=two.api, api_key=secret, max_retries=1)
    blob = bytes(range(256)) * 10_000  # 2.5 MiB: three parts
    blob_id = first.files.create(file=("blob.bin", io.BytesIO(blob)), purpose="user_data").id
    assert second.files.content(blob_id).read() == blob  # the bytes shared, part by part
    data = b"Tide tables: high water at Skerry Point is at 06:40 on Sundays."
    file_id = first.files.create(file=("tides.txt", io.BytesIO(data)), purpose="assistants").id
    store = second.vector_stores.create(name="tides", file_ids=[file_id])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        counts = first.vector_stores.retrieve(store.id).file_counts
        if counts.in_progress == 0:
            break
        time.sleep(0.5)
    assert (counts.completed, counts.total) == (1, 1)
    for client in (first, second):
        hits = client.vector_stores.search(vector_store_id=store.id, query="high water Sundays")
        assert hits.data[0].file_id == file_id
        assert "06:40" in (hits.data[0].content[0].text or "")
    indexed = asyncio.run(in_pgvector(url))
    assert indexed == ("pgvector" in request.node.callspec.id), indexed


async def in_pgvector(url: str) -> bool:
    """Whether the chunks' vectors are in pgvector's column, under its HNSW index."""
    import asyncpg

    db = await asyncpg.connect(url)
    try:
        column = await db.fetchval(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'chunks' AND column_name = 'embedding'"
        )
        if not column:
            return False
        filled = await db.fetchval("SELECT count(*) FROM chunks WHERE embedding IS NOT NULL")
        index = await db.fetchval(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'chunks_embedding_384'"
        )
        return bool(filled) and bool(index)
    finally:
        await db.close()


def test_an_agents_knowledge_and_file_search_on_postgres(
    pair: tuple[RunningServer, RunningServer, str], upstream: FakeUpstream, tmp_path: Path
) -> None:
    one, _two, _url = pair
    secret = str(issue(one, name="pg-agent", scopes=["chat"])["secret"])
    client = openai.OpenAI(base_url=one.api, api_key=secret, max_retries=0)
    call = {"id": "c", "name": "file_search", "arguments": json.dumps({"query": "lamp"})}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the agent's own store, made by either instance
        upstream.reset()
        upstream.script(PREFIX, Reply(text="", tool_calls=[call]), Reply(text="At dusk [1]."))
        reply = client.chat.completions.create(
            model="keeper", messages=[{"role": "user", "content": "When is the lamp lit?"}]
        )
        if reply.choices[0].message.annotations:
            break
        time.sleep(0.5)
    (annotation,) = reply.choices[0].message.annotations or []
    assert annotation.url_citation.title == "docs/lamp.md"
    assert "lit at dusk" in upstream.received(PREFIX)[1].body["messages"][-1]["content"]
