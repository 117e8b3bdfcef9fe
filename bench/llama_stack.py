"""Beside a peer: Llama Stack on the same corpus, the same machine and the same embedding model.

Llama Stack serves OpenAI's Files and Vector Stores APIs (under ``/v1/openai/v1``) with its
``inline::sqlite-vec`` vector store; its embeddings come from headend's ``/v1/embeddings``
(the built-in all-MiniLM-L6-v2) through its ``remote::vllm`` provider, with a shim in front
that lists the model (the provider asks ``/v1/models`` for it; headend does not list its
embedding model there). Each passage is uploaded as a file and attached to one store, as
``bench/knowledge.py`` does with headend, then every judged query is searched.

It needs a Python whose sqlite3 can load extensions (sqlite-vec is one): pyenv's cannot, so
Llama Stack runs from a venv of Debian's ``/usr/bin/python3`` (``--llama-python``):

    /usr/bin/python3 -m venv /tmp/ls && /tmp/ls/bin/pip install llama-stack==0.2.12 sqlite-vec \\
        chardet pypdf 'sqlalchemy[asyncio]' aiosqlite uvicorn fastapi python-multipart \\
        opentelemetry-sdk opentelemetry-exporter-otlp-proto-http
    .venv/bin/python bench/llama_stack.py --data ../shared/data/retrieval/msmarco \\
        --llama-python /tmp/ls/bin/python

Reports ingestion time, nDCG@10 and search latency, as bench/knowledge.py does for headend.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import openai
from aiohttp import ClientSession, web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gateway import cpu_seconds
from bench.knowledge import load, mean, ndcg10, searched
from bench.sites import served_site
from tests.conftest import free_port

ADMIN = "bench-admin-0123456789abcdef0123456789"
MODEL = "all-MiniLM-L6-v2"
RUN_YAML = """
version: '2'
image_name: bench
apis: [files, inference, vector_io]
providers:
  inference:
  - provider_id: vllm
    provider_type: remote::vllm
    config: {{url: "http://127.0.0.1:{shim}/v1", api_token: "{key}", tls_verify: false}}
  vector_io:
  - provider_id: sqlite-vec
    provider_type: inline::sqlite-vec
    config: {{db_path: "{root}/sqlite_vec.db"}}
  files:
  - provider_id: localfs
    provider_type: inline::localfs
    config:
      storage_dir: "{root}/files"
      metadata_store: {{type: sqlite, db_path: "{root}/files.db"}}
metadata_store: {{type: sqlite, db_path: "{root}/registry.db"}}
models:
- model_id: {model}
  provider_id: vllm
  provider_model_id: {model}
  model_type: embedding
  metadata: {{embedding_dimension: 384}}
server: {{port: {port}}}
"""


def shim(headend: str, port: int) -> None:
    """``/v1/models`` listing the built-in model; everything else passed to headend."""

    async def models(request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "headend"}]}
        )

    async def forward(request: web.Request) -> web.Response:
        async with (
            ClientSession() as session,
            session.request(
                request.method,
                headend + request.path,
                data=await request.read(),
                headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
            ) as answer,
        ):
            return web.Response(
                body=await answer.read(), status=answer.status, content_type="application/json"
            )

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_route("*", "/{tail:.*}", forward)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    loop.run_forever()


def _key(text: str | None) -> str:
    return " ".join((text or "").split())[:80]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--llama-python", required=True)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    corpus, queries, qrels = load(args.data)
    judged = {q: t for q, t in queries.items() if q in qrels}
    with (
        served_site("store: sqlite:///bench.db\n", ADMIN) as headend,
        tempfile.TemporaryDirectory() as root,
    ):
        shim_port, port = free_port(), free_port()
        threading.Thread(target=shim, args=(headend.base_url, shim_port), daemon=True).start()
        (Path(root) / "run.yaml").write_text(
            RUN_YAML.format(shim=shim_port, key=ADMIN, root=root, model=MODEL, port=port)
        )
        llama_bin = str(Path(args.llama_python).parent / "llama")
        log = (Path(root) / "llama.log").open("wb")
        env = {**os.environ, "LLAMA_STACK_LOGGING": "all=warning"}
        stack = subprocess.Popen(
            [llama_bin, "stack", "run", str(Path(root) / "run.yaml"), "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                if stack.poll() is not None:
                    raise SystemExit((Path(root) / "llama.log").read_text()[-3000:])
                try:
                    if httpx.get(base + "/v1/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(1)
            client = openai.OpenAI(base_url=base + "/v1/openai/v1", api_key="none", timeout=600)
            cpu0 = cpu_seconds(stack.pid)
            started = time.monotonic()
            store = client.vector_stores.create(
                name="bench",
                extra_body={"embedding_model": MODEL, "embedding_dimension": 384},
            )
            names = {}
            for doc_id, text in corpus.items():
                made = client.files.create(
                    file=(f"{doc_id}.txt", io.BytesIO(text.encode())), purpose="assistants"
                )
                names[made.id] = doc_id
                attached = client.vector_stores.files.create(
                    vector_store_id=store.id, file_id=made.id
                )
                if attached.status == "failed":
                    raise SystemExit(f"Llama Stack could not ingest a file: {attached.last_error}")
            took = time.monotonic() - started
            cpu = cpu_seconds(stack.pid) - cpu0
            print(f"Llama Stack ingested {len(names)} files in {took:.1f} s, its CPU {cpu:.0f} s")
            by_text = {_key(text): doc_id for doc_id, text in corpus.items()}
            # (0.2.12 leaves a hit's file_id empty: its passage is found by its text)
            got, (p50, p95) = searched(
                client,
                store.id,
                judged,
                lambda hit: names.get(hit.file_id) or by_text.get(_key(hit.content[0].text), ""),
                args.repeat,
            )
            quality = mean([ndcg10(got[q], qrels[q]) for q in judged])
            print(f"Llama Stack nDCG@10 {quality:.3f}")
            print(f"search p50 {p50:.1f} ms, p95 {p95:.1f} ms")
        finally:
            stack.terminate()
            stack.wait(timeout=30)


if __name__ == "__main__":
    main()
