"""Ingestion is a durable job: headend killed with SIGKILL in the middle of embedding a file
loses no file. Started again on the same store, it takes the file up once its claim lapses and
ends it ``completed``, each chunk written once; the file still waiting is ingested too."""

from __future__ import annotations

import io
import signal
import time
from pathlib import Path

import openai
import pytest

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import issue, make_site, serve
from tests.upstream import FakeUpstream

pytestmark = pytest.mark.e2e

SENTENCES = [f"Line {n} of the harbour log records ship number {n * 7}." for n in range(1500)]


def client(server: RunningServer, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api, api_key=secret, max_retries=2)


def test_a_kill_during_ingestion_loses_no_file(upstream: FakeUpstream, tmp_path: Path) -> None:
    site = make_site(tmp_path, upstream, "crash", {}, "knowledge: {claim_seconds: 2}\n")
    first = serve(site, "first.log")
    try:
        secret = str(issue(first, name="docs", scopes=["chat"])["secret"])
        sdk = client(first, secret)
        big = sdk.files.create(
            file=("log.txt", io.BytesIO(" ".join(SENTENCES).encode())), purpose="assistants"
        ).id
        small = sdk.files.create(
            file=("note.txt", io.BytesIO(b"The lighthouse lamp is lit at dusk.")),
            purpose="assistants",
        ).id
        store = sdk.vector_stores.create(
            name="durable",
            file_ids=[big, small],
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0},
            },
        )
        time.sleep(1.0)  # the ingester has claimed the large file and is embedding it
        before = sdk.vector_stores.retrieve(store.id).file_counts
        assert before.in_progress == 2, before
    finally:
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
    second = serve(site, "second.log")
    try:
        sdk = client(second, secret)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            counts = sdk.vector_stores.retrieve(store.id).file_counts
            if counts.in_progress == 0:
                break
            time.sleep(0.5)
        assert (counts.completed, counts.failed, counts.total) == (2, 0, 2), counts
        chunks = [
            part.text or ""
            for part in sdk.vector_stores.files.content(file_id=big, vector_store_id=store.id)
        ]
        assert len(chunks) == len(set(chunks)) > 10  # each chunk once
        assert chunks[0].startswith("Line 0 of")
        assert chunks[-1].endswith(SENTENCES[-1])
        hits = sdk.vector_stores.search(vector_store_id=store.id, query="when is the lamp lit")
        assert hits.data[0].file_id == small
        hits = sdk.vector_stores.search(vector_store_id=store.id, query="harbour log of ships")
        assert hits.data[0].file_id == big
    finally:
        stop_server(second)
