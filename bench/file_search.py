"""What ``file_search`` adds before the first token: a streamed Responses request to a model
route whose (fake, instant) upstream first calls ``file_search`` and then answers, against the
same request with no tool, the upstream answering at once. The difference is the search (the
query embedded by the built-in model, words and vectors searched, fused), the round of the
tool loop and the second upstream call.

    .venv/bin/python bench/file_search.py --data ../shared/data/retrieval/msmarco \\
        --passages 1000 --rounds 40

Reports time to the first ``response.output_text.delta``, p50 and p95, both ways.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import openai

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.knowledge import lines
from bench.sites import served_site
from tests.upstream import FakeUpstream, Reply

ADMIN = "bench-admin-0123456789abcdef0123456789"


def first_token(client: openai.OpenAI, **request: Any) -> float:
    """Seconds to the first text delta (the stream is read to its end)."""
    started = time.perf_counter()
    first = None
    with client.responses.stream(model="gpt", input="When?", **request) as stream:
        for event in stream:
            if event.type == "response.output_text.delta" and first is None:
                first = time.perf_counter() - started
    assert first is not None, "no text"
    return first


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--passages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    passages = [json.loads(line)["text"] for line in lines(args.data / "corpus.jsonl")]
    queries = [json.loads(line)["text"] for line in lines(args.data / "queries.jsonl")]
    upstream = FakeUpstream()
    upstream.start()
    config = f'providers:\n  up: {{type: openai, base_url: "{upstream.url("fs")}/v1"}}\n'
    config += "models:\n  gpt: up/gpt\n"
    try:
        with served_site(config, ADMIN) as server:
            client = openai.OpenAI(base_url=server.api, api_key=ADMIN, max_retries=0)
            store = client.vector_stores.create(name="bench")
            files = [("p.txt", io.BytesIO(text.encode())) for text in passages[: args.passages]]
            batch = client.vector_stores.file_batches.upload_and_poll(
                vector_store_id=store.id, files=files, poll_interval_ms=1000
            )
            print(f"{batch.file_counts.completed} passages indexed")
            tool = [{"type": "file_search", "vector_store_ids": [store.id]}]
            plain, searched = [], []
            for n in range(args.rounds):
                upstream.reset()
                upstream.script("fs", Reply(text="Now."))
                plain.append(first_token(client))
                call = {
                    "id": "c",
                    "name": "file_search",
                    "arguments": json.dumps({"query": queries[n % len(queries)]}),
                }
                upstream.reset()
                upstream.script("fs", Reply(text="", tool_calls=[call]), Reply(text="Now [1]."))
                searched.append(first_token(client, tools=tool))
    finally:
        upstream.stop()
    for label, times in (("no tool", plain), ("file_search", searched)):
        times.sort()
        p50, p95 = statistics.median(times) * 1000, times[int(len(times) * 0.95)] * 1000
        print(f"| {label} | {p50:.1f} | {p95:.1f} |")
    added = (statistics.median(searched) - statistics.median(plain)) * 1000
    print(f"file_search adds {added:.1f} ms at p50 before the first token")


if __name__ == "__main__":
    main()
