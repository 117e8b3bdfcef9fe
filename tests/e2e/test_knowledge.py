"""Files and vector stores on OpenAI's wire, driven by the openai SDK against a real headend:
upload, ingestion (the built-in embedding model, offline), hybrid search with filters, keys
that never see each other's files, files that cannot be read, and bad input."""

from __future__ import annotations

import base64
import io
import struct
import time
from collections.abc import Iterator
from typing import Any

import docx
import httpx
import openai
import pytest

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, issue, make_site, serve
from tests.pdfs import pdf
from tests.upstream import FakeUpstream

pytestmark = pytest.mark.e2e

MAX_FILE = 200_000
BUILTIN = "all-MiniLM-L6-v2"
DOCS = {
    "cats.md": "# Cats\n\nCats are small carnivorous mammals. They purr, groom their fur and "
    "sleep for most of the day. Domestic cats hunt mice and birds.",
    "rust.txt": "Rust is a systems programming language focused on memory safety without a "
    "garbage collector. Its borrow checker enforces ownership and lifetimes at compile time.",
    "bread.html": "<html><head><style>p {color: red}</style><script>var x = 1;</script></head>"
    "<body><h1>Baking bread</h1><p>Knead the dough, let it rise for an hour, then bake it at "
    "220 degrees until the crust is brown.</p></body></html>",
    "orbits.json": '{"topic": "orbits", "text": "Planets travel around the sun on elliptical '
    'orbits; Kepler described their periods."}',
    "tides.csv": "place,fact\nharbour,The moon's gravity pulls the oceans and makes the tides "
    "rise and fall twice a day\n",
}


@pytest.fixture(scope="module")
def site(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    extra = f"knowledge: {{max_file_bytes: {MAX_FILE}, max_files_per_key: 40}}\n"
    server = serve(make_site(tmp_path_factory.mktemp("knowledge"), upstream, "kn", {}, extra))
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def owner(site: RunningServer) -> openai.OpenAI:
    key = issue(site, name="owner", scopes=["chat"])
    return openai.OpenAI(base_url=site.api, api_key=str(key["secret"]), max_retries=0)


def upload(client: openai.OpenAI, name: str, data: bytes) -> str:
    return client.files.create(file=(name, io.BytesIO(data)), purpose="assistants").id


def word_document(text: str) -> bytes:
    document = docx.Document()
    document.add_heading("Volcanoes", level=1)
    document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_the_sdk_flow_uploads_indexes_and_searches_offline(owner: openai.OpenAI) -> None:
    ids = {name: upload(owner, name, text.encode()) for name, text in DOCS.items()}
    ids["lava.pdf"] = upload(owner, "lava.pdf", pdf([["Basalt lava flows from shield volcanoes"]]))
    ids["volcano.docx"] = upload(
        owner, "volcano.docx", word_document("Magma chambers feed eruptions of ash and pumice.")
    )
    store = owner.vector_stores.create(name="kb", metadata={"team": "docs"})
    attributes: dict[str, dict[str, Any]] = {
        "cats.md": {"kind": "animal", "year": 2020},
        "rust.txt": {"kind": "code", "year": 2024},
        "bread.html": {"kind": "food", "year": 2023},
    }
    batch = owner.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id,
        files=[
            {"file_id": file_id, "attributes": attributes.get(name, {"kind": "science"})}
            for name, file_id in ids.items()
        ],
        poll_interval_ms=200,
    )
    assert batch.status == "completed"
    assert (batch.file_counts.completed, batch.file_counts.total) == (len(ids), len(ids))
    found = owner.vector_stores.retrieve(store.id)
    assert found.status == "completed"
    assert found.file_counts.completed == len(ids)
    assert found.usage_bytes > 0
    assert found.metadata == {"team": "docs"}

    def top(query: str | list[str], **options: Any) -> list[str]:
        page = owner.vector_stores.search(vector_store_id=store.id, query=query, **options)
        return [hit.filename for hit in page.data]

    # Each file is found by what it says, in other words than its own.
    assert top("how do I bake a loaf")[0] == "bread.html"
    assert top("ownership rules of a compiled language")[0] == "rust.txt"
    assert top("pets that purr")[0] == "cats.md"
    assert top("why does the sea level change every day")[0] == "tides.csv"
    assert top("Kepler planets")[0] == "orbits.json"
    assert top("basalt lava")[0] == "lava.pdf"
    assert top("magma and pumice")[0] == "volcano.docx"
    # Filters: comparison, compound, nested; and the result count.
    newer = top("pets", filters={"type": "gte", "key": "year", "value": 2023})
    assert set(newer) == {"rust.txt", "bread.html"}
    either = {
        "type": "or",
        "filters": [
            {"type": "eq", "key": "kind", "value": "animal"},
            {
                "type": "and",
                "filters": [
                    {"type": "in", "key": "kind", "value": ["code", "food"]},
                    {"type": "lt", "key": "year", "value": 2024},
                ],
            },
        ],
    }
    assert set(top("anything at all", filters=either)) == {"cats.md", "bread.html"}
    assert "cats.md" not in top("cats", filters={"type": "ne", "key": "kind", "value": "animal"})
    assert len(top("the", max_num_results=2)) == 2
    # A threshold of 1 keeps only what ranks first by words and by meaning.
    assert top("borrow checker", ranking_options={"score_threshold": 1.0}) == ["rust.txt"]
    hit = owner.vector_stores.search(vector_store_id=store.id, query="bread").data[0]
    assert hit.attributes == {"kind": "food", "year": 2023}
    assert "Knead the dough" in hit.content[0].text
    assert "color: red" not in hit.content[0].text  # the page's markup and style are not text
    # A list of queries searches for each.
    both = top(["purring pets", "baking bread"], max_num_results=2)
    assert set(both) == {"cats.md", "bread.html"}


def test_files_list_page_download_and_delete(owner: openai.OpenAI, site: RunningServer) -> None:
    made = [upload(owner, f"page-{n}.txt", f"note number {n}".encode()) for n in range(5)]
    listed = owner.files.list(limit=2, order="asc", purpose="assistants")
    assert len(listed.data) == 2
    every = [f.id for f in owner.files.list(limit=2, order="asc")]  # the SDK follows the cursor
    assert [i for i in every if i in made] == made
    assert owner.files.retrieve(made[0]).filename == "page-0.txt"
    assert owner.files.content(made[3]).read() == b"note number 3"
    assert owner.files.delete(made[4]).deleted
    with pytest.raises(openai.NotFoundError):
        owner.files.retrieve(made[4])
    audit = httpx.get(
        site.base_url + "/admin/audit",
        params={"action": "file"},
        headers={"Authorization": f"Bearer {ADMIN}"},
    ).json()["data"]
    actions = {(entry["action"], entry["target"]) for entry in audit}
    assert ("file.upload", made[0]) in actions
    assert ("file.delete", made[4]) in actions


def test_a_large_file_is_stored_in_parts_and_read_back_whole(owner: openai.OpenAI) -> None:
    data = bytes(range(256)) * (MAX_FILE // 256 - 1)  # not text: kept, never indexed
    file_id = upload(owner, "blob.bin", data)
    assert owner.files.retrieve(file_id).bytes == len(data)
    assert owner.files.content(file_id).read() == data


def test_keys_never_see_each_others_files_or_stores(
    site: RunningServer, owner: openai.OpenAI
) -> None:
    mine = upload(owner, "secret.txt", b"the launch code is tangerine")
    store = owner.vector_stores.create(name="mine", file_ids=[mine])
    other_key = issue(site, name="other", scopes=["knowledge"])
    other = openai.OpenAI(base_url=site.api, api_key=str(other_key["secret"]), max_retries=0)
    for attempt in (
        lambda: other.files.retrieve(mine),
        lambda: other.files.content(mine),
        lambda: other.files.delete(mine),
        lambda: other.vector_stores.retrieve(store.id),
        lambda: other.vector_stores.search(vector_store_id=store.id, query="launch code"),
        lambda: other.vector_stores.files.list(vector_store_id=store.id),
        lambda: other.vector_stores.delete(store.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert mine not in [f.id for f in other.files.list()]
    assert store.id not in [s.id for s in other.vector_stores.list()]
    # Naming another key's file makes nothing, and says which file.
    before = [s.id for s in other.vector_stores.list()]
    with pytest.raises(openai.NotFoundError) as caught:
        other.vector_stores.create(name="theirs", file_ids=[mine])
    assert mine in caught.value.message
    assert [s.id for s in other.vector_stores.list()] == before
    # The knowledge scope keeps files and stores, and chats with nothing.
    own = upload(other, "own.txt", b"the other key's own note")
    assert other.files.retrieve(own).id == own
    with pytest.raises(openai.PermissionDeniedError):
        other.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}])
    # An admin sees every key's files.
    admin = openai.OpenAI(base_url=site.api, api_key=ADMIN, max_retries=0)
    assert admin.files.retrieve(mine).id == mine


def test_files_that_cannot_be_read_fail_with_their_reason(owner: openai.OpenAI) -> None:
    broken = upload(owner, "broken.pdf", b"%PDF-1.4 this is not really a pdf")
    strange = upload(owner, "image.png", b"\x89PNG\r\n\x1a\n")
    latin = upload(owner, "latin.txt", "caf\xe9".encode("latin-1"))
    good = upload(owner, "good.md", b"A good file about lighthouses and their keepers.")
    store = owner.vector_stores.create(name="mixed")
    batch = owner.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=[broken, strange, latin, good], poll_interval_ms=200
    )
    assert (batch.file_counts.failed, batch.file_counts.completed) == (3, 1)
    errors = {
        f.id: f.last_error.code if f.last_error else None
        for f in owner.vector_stores.files.list(vector_store_id=store.id)
    }
    assert errors == {
        broken: "invalid_file",
        strange: "unsupported_file",
        latin: "invalid_file",
        good: None,
    }
    failed = owner.vector_stores.files.list(vector_store_id=store.id, filter="failed")
    assert {f.id for f in failed} == {broken, strange, latin}
    counts = owner.vector_stores.retrieve(store.id).file_counts
    assert (counts.failed, counts.completed, counts.in_progress, counts.total) == (3, 1, 0, 4)


def test_store_files_change_and_go(owner: openai.OpenAI) -> None:
    first = upload(owner, "first.txt", b"Penguins live in the southern hemisphere.")
    second = upload(owner, "second.txt", b"Glaciers carve valleys over thousands of years.")
    store = owner.vector_stores.create(
        name="changing",
        file_ids=[first],
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 20},
        },
    )
    added = owner.vector_stores.files.create_and_poll(
        vector_store_id=store.id, file_id=second, attributes={"region": "north"}
    )
    assert added.status == "completed"
    assert added.chunking_strategy is not None
    assert added.chunking_strategy.type == "static"
    updated = owner.vector_stores.files.update(
        vector_store_id=store.id, file_id=second, attributes={"region": "alps"}
    )
    assert updated.attributes == {"region": "alps"}
    hits = owner.vector_stores.search(
        vector_store_id=store.id,
        query="glaciers",
        filters={"type": "eq", "key": "region", "value": "alps"},
    )
    assert [h.file_id for h in hits.data] == [second]
    owner.vector_stores.files.delete(vector_store_id=store.id, file_id=second)
    assert [
        h.file_id
        for h in owner.vector_stores.search(vector_store_id=store.id, query="glaciers").data
    ] == [first]
    # Deleting the file itself takes it out of every store.
    owner.files.delete(first)
    assert owner.vector_stores.search(vector_store_id=store.id, query="penguins").data == []
    assert owner.vector_stores.retrieve(store.id).file_counts.total == 0
    renamed = owner.vector_stores.update(
        store.id, name="renamed", expires_after={"anchor": "last_active_at", "days": 2}
    )
    assert renamed.name == "renamed"
    assert renamed.expires_at is not None
    assert owner.vector_stores.delete(store.id).deleted
    with pytest.raises(openai.NotFoundError):
        owner.vector_stores.retrieve(store.id)


def test_a_cancelled_batch_ends_its_waiting_files(
    site: RunningServer, owner: openai.OpenAI
) -> None:
    # Enough text that ingestion is still under way when the cancel arrives.
    long = " ".join(f"Sentence {n} about harbours, ships and the sea." for n in range(3000))
    files = [upload(owner, f"long-{n}.txt", long.encode()) for n in range(3)]
    store = owner.vector_stores.create(name="cancelled")
    batch = owner.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=files)
    cancelled = owner.vector_stores.file_batches.cancel(batch_id=batch.id, vector_store_id=store.id)
    assert cancelled.status in ("cancelled", "in_progress")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = owner.vector_stores.file_batches.retrieve(batch_id=batch.id, vector_store_id=store.id)
        if now.status != "in_progress":
            break
        time.sleep(0.2)
    assert now.status == "cancelled"
    assert now.file_counts.cancelled >= 2
    assert now.file_counts.in_progress == 0


def test_too_large_files_are_413_and_leave_nothing(
    owner: openai.OpenAI, site: RunningServer
) -> None:
    before = len(owner.files.list().data)
    with pytest.raises(openai.APIStatusError) as caught:
        upload(owner, "big.txt", b"x" * (MAX_FILE + 1))
    assert caught.value.status_code == 413
    assert len(owner.files.list().data) == before


BAD: list[tuple[str, str, Any]] = [
    (
        "POST",
        "/vector_stores",
        {
            "chunking_strategy": {
                "type": "static",
                "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150},
            }
        },
    ),
    ("POST", "/vector_stores", {"chunking_strategy": {"type": "static"}}),
    ("POST", "/vector_stores", {"file_ids": "file-1"}),
    ("POST", "/vector_stores", {"metadata": {str(n): "v" for n in range(17)}}),
    ("POST", "/vector_stores", {"expires_after": {"anchor": "created_at", "days": 1}}),
    ("POST", "/vector_stores", [1, 2]),
]
SEARCH_BAD: list[Any] = [
    {},
    {"query": ""},
    {"query": "x", "max_num_results": 51},
    {"query": "x", "max_num_results": 0},
    {"query": "x", "filters": {"type": "eq", "key": "k"}},
    {"query": "x", "filters": {"type": "in", "key": "k", "value": "one"}},
    {"query": "x", "filters": {"type": "and", "filters": []}},
    {"query": "x", "filters": {"type": "like", "key": "k", "value": "v"}},
    {"query": "x", "ranking_options": {"score_threshold": 2}},
    {"query": "x", "ranking_options": {"ranker": "best"}},
    {"query": 7},
]


def test_bad_input_is_a_400_in_the_envelope(site: RunningServer, owner: openai.OpenAI) -> None:
    headers = {"Authorization": f"Bearer {owner.api_key}"}
    for method, path, body in BAD:
        answer = httpx.request(method, site.api + path, json=body, headers=headers)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"]["type"] == "invalid_request_error"
    store = owner.vector_stores.create(name="bad")
    for body in SEARCH_BAD:
        answer = httpx.post(
            f"{site.api}/vector_stores/{store.id}/search", json=body, headers=headers
        )
        assert answer.status_code == 400, (body, answer.text)
        assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    for form, files in (
        ({"purpose": "assistants"}, None),
        ({"purpose": "nonsense"}, {"file": ("a.txt", b"x")}),
        ({}, {"file": ("a.txt", b"x")}),
    ):
        answer = httpx.post(site.api + "/files", data=form, files=files, headers=headers)
        assert answer.status_code == 400, answer.text
    assert (
        httpx.post(site.api + "/files", json={"purpose": "assistants"}, headers=headers).status_code
        == 400
    )
    assert httpx.get(site.api + "/files?limit=0", headers=headers).status_code == 400
    assert httpx.get(site.api + "/files?order=sideways", headers=headers).status_code == 400
    assert (
        httpx.get(
            f"{site.api}/vector_stores/{store.id}/files?filter=done", headers=headers
        ).status_code
        == 400
    )


def test_a_store_may_embed_with_a_model_route(owner: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.reset()
    file_id = upload(owner, "routed.txt", b"Embedded by the upstream's own model.")
    store = owner.vector_stores.create(
        name="routed", file_ids=[file_id], extra_body={"embedding_model": "gpt"}
    )
    deadline = time.monotonic() + 30
    while owner.vector_stores.retrieve(store.id).file_counts.in_progress:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert owner.vector_stores.retrieve(store.id).file_counts.completed == 1
    hits = owner.vector_stores.search(vector_store_id=store.id, query="upstream model")
    assert hits.data[0].file_id == file_id
    asked = [r.body["input"] for r in upstream.received("kn") if r.path.endswith("/embeddings")]
    assert asked == [["Embedded by the upstream's own model."], ["upstream model"]]
    with pytest.raises(openai.BadRequestError) as caught:
        owner.vector_stores.create(name="nope", extra_body={"embedding_model": "nope"})
    assert caught.value.body is not None
    assert "embedding_model" in str(caught.value.body)


def test_a_keys_files_are_held_to_its_quota(site: RunningServer) -> None:
    key = issue(site, name="quota", scopes=["knowledge"])
    client = openai.OpenAI(base_url=site.api, api_key=str(key["secret"]), max_retries=0)
    made = [upload(client, f"n{n}.txt", b"a note") for n in range(40)]
    with pytest.raises(openai.PermissionDeniedError) as caught:
        upload(client, "one-too-many.txt", b"a note")
    assert caught.value.code == "storage_quota_exceeded"
    assert len(client.files.list().data) == 40  # nothing kept of the refused one
    client.files.delete(made[0])
    assert upload(client, "room-again.txt", b"a note").startswith("file-")


def test_the_built_in_model_serves_embeddings_too(
    owner: openai.OpenAI, site: RunningServer
) -> None:
    texts = ["The ferry leaves at eleven.", "When does the boat depart?", "Sourdough starter"]
    vectors = [d.embedding for d in owner.embeddings.create(model=BUILTIN, input=texts).data]
    assert [len(v) for v in vectors] == [384, 384, 384]

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2
    packed = owner.embeddings.create(model=BUILTIN, input=texts[0], encoding_format="base64")
    raw = base64.b64decode(str(packed.data[0].embedding))
    assert list(struct.unpack("<384f", raw)) == pytest.approx(vectors[0], abs=1e-5)
    short = owner.embeddings.create(model=BUILTIN, input=texts[0], dimensions=64)
    assert len(short.data[0].embedding) == 64
    assert short.usage.prompt_tokens > 0
    for bad in ([[101, 2023]], "word " * 300):
        with pytest.raises(openai.BadRequestError):
            owner.embeddings.create(model=BUILTIN, input=bad)
    admin = openai.OpenAI(base_url=site.api, api_key=ADMIN, max_retries=0)
    assert admin.models.retrieve(BUILTIN).owned_by == "headend"
    assert BUILTIN not in [m.id for m in admin.models.list()]  # chat pickers list models


def test_a_file_may_expire(site: RunningServer, owner: openai.OpenAI) -> None:
    made = owner.files.create(
        file=("short.txt", io.BytesIO(b"soon gone")),
        purpose="assistants",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert made.expires_at == made.created_at + 3600
    headers = {"Authorization": f"Bearer {owner.api_key}"}
    for seconds in ("60", "forever"):
        answer = httpx.post(
            site.api + "/files",
            data={
                "purpose": "assistants",
                "expires_after[anchor]": "created_at",
                "expires_after[seconds]": seconds,
            },
            files={"file": ("a.txt", b"x")},
            headers=headers,
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"].startswith("expires_after")
