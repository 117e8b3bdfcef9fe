"""A 1,000-page PDF, uploaded and ingested on headend's defaults: how long from the upload to
``completed``, how many chunks, and the server's CPU and memory meanwhile.

    .venv/bin/python bench/knowledge_pdf.py --data ../shared/data/retrieval/msmarco --pages 1000

The PDF is written here, one page after another, each page about 300 words of the judged
corpus's passages in Helvetica, compressed as PDF writers do.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import openai

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gateway import cpu_seconds
from bench.knowledge import lines, rss_mib
from bench.sites import served_site
from tests.pdfs import pdf

ADMIN = "bench-admin-0123456789abcdef0123456789"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--pages", type=int, default=1000)
    args = parser.parse_args()
    words = " ".join(json.loads(line)["text"] for line in lines(args.data / "corpus.jsonl")).split()
    pages = []
    for number in range(args.pages):
        start = number * 300 % max(len(words) - 300, 1)
        page = words[start : start + 300]
        pages.append([" ".join(page[i : i + 15]) for i in range(0, len(page), 15)])
    document = pdf(pages)
    print(f"{args.pages} pages, {len(document) / 2**20:.1f} MiB")
    with served_site("store: sqlite:///bench.db\n", ADMIN) as server:
        client = openai.OpenAI(base_url=server.api, api_key=ADMIN, max_retries=0, timeout=600)
        pid = server.process.pid
        cpu0 = cpu_seconds(pid)
        started = time.monotonic()
        file_id = client.files.create(
            file=("book.pdf", io.BytesIO(document)), purpose="assistants"
        ).id
        store = client.vector_stores.create(name="book", file_ids=[file_id])
        peak = 0.0
        while True:
            found = client.vector_stores.files.retrieve(file_id=file_id, vector_store_id=store.id)
            peak = max(peak, rss_mib(pid))
            if found.status != "in_progress":
                break
            time.sleep(1)
        took = time.monotonic() - started
        chunks = len(
            list(client.vector_stores.files.content(file_id=file_id, vector_store_id=store.id))
        )
        print(
            f"status {found.status} ({found.last_error}) after {took:.1f} s: {chunks} chunks, "
            f"{chunks / took:.1f} chunks/s; server CPU {cpu_seconds(pid) - cpu0:.0f} s, "
            f"peak RSS {peak:.0f} MiB"
        )


if __name__ == "__main__":
    main()
