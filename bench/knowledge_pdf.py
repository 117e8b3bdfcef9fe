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
import zlib
from pathlib import Path

import openai

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gateway import cpu_seconds
from bench.knowledge import lines, rss_mib
from bench.sites import served_site

ADMIN = "bench-admin-0123456789abcdef0123456789"


def escaped(text: str) -> str:
    safe = text.encode("latin-1", "replace").decode("latin-1")
    return safe.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf(pages: list[list[str]]) -> bytes:
    """A PDF whose page n shows the lines ``pages[n]``."""
    objects: list[bytes] = [b"", b""]  # the catalog and the page tree, written last
    kids = []
    font = len(objects) + 1
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for page in pages:
        shown = "".join(f"({escaped(line)}) Tj T* " for line in page)
        stream = zlib.compress(f"BT /F1 9 Tf 11 TL 40 760 Td {shown}ET".encode("latin-1"))
        objects.append(
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream)
            + stream
            + b"\nendstream"
        )
        content = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (content, font)
        )
        kids.append(len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % kid for kid in kids),
        len(kids),
    )
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    table = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        table,
    )
    return bytes(out)


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
