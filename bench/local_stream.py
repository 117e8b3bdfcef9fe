"""Streaming speed of the embedded model: through headend vs llama-cpp-python directly.

In one run, on the same prompt and sampling: time to first token (TTFT) and decode speed
(tokens per second between the first and the last token) of

  direct   llama-cpp-python's create_chat_completion(stream=True), in this process;
  headend  POST /v1/chat/completions with stream=true, to a headend started by this script
           on a loopback port, read with a raw HTTP client.

Greedy decoding loops on this small model until max_tokens, so both sides generate exactly
the same number of tokens. Each repetition alters the prompt so that neither side profits
from the KV cache of the one before; sides alternate so drift hits both alike, with a short pause
between them so neither runs against the other's still-spinning llama.cpp threads.

    .venv/bin/python bench/local_stream.py [--reps 5] [--max-tokens 256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import start_server, stop_server

from headend.providers.llama_cpp import bundled_model_path

SYSTEM = "You are a helpful assistant."
# llama.cpp's threads busy-poll for a while after each call; without a pause between sides,
# each side would run against the other's spinning threads.
SETTLE = 0.2
AGENT = f"---\nmodel: local\n---\n{SYSTEM}\n"


def messages(rep: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Story number {rep}: tell me a long story about the sea."},
    ]


def direct(llama: object, rep: int, max_tokens: int) -> tuple[float, float, int]:
    started = time.perf_counter()
    stamps: list[float] = []
    for chunk in llama.create_chat_completion(  # type: ignore[attr-defined]
        messages=messages(rep), temperature=0, max_tokens=max_tokens, stream=True
    ):
        if chunk["choices"][0]["delta"].get("content"):
            stamps.append(time.perf_counter())
    return stamps[0] - started, (len(stamps) - 1) / (stamps[-1] - stamps[0]), len(stamps)


def through_headend(
    http: httpx.Client, url: str, rep: int, max_tokens: int
) -> tuple[float, float, int]:
    import json

    body = {
        "model": "bench",
        "messages": messages(rep)[1:],  # the agent adds the same system prompt
        "temperature": 0,
        "max_tokens": max_tokens,
        "stream": True,
    }
    started = time.perf_counter()
    stamps: list[float] = []
    with http.stream("POST", url, json=body) as response:
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            choices = json.loads(line[6:])["choices"]
            if choices and choices[0]["delta"].get("content"):
                stamps.append(time.perf_counter())
    return stamps[0] - started, (len(stamps) - 1) / (stamps[-1] - stamps[0]), len(stamps)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    from llama_cpp import Llama

    threads = args.threads
    llama = Llama(
        model_path=str(bundled_model_path()),
        n_ctx=4096,
        n_threads=threads,
        n_batch=512,
        verbose=False,
    )
    site = Path(tempfile.mkdtemp())
    (site / "agents").mkdir()
    (site / "agents" / "bench.md").write_text(AGENT)
    (site / "headend.yaml").write_text(
        f"providers:\n  local: {{type: llama_cpp, n_threads: {threads}, n_ctx: 4096}}\n"
    )
    server = start_server(
        site / "agents",
        site / "server.log",
        "--config",
        str(site / "headend.yaml"),
        "--log-level",
        "warning",
    )
    try:
        with httpx.Client(timeout=300) as http:
            url = server.api + "/chat/completions"
            direct(llama, -1, 8)  # warm both sides
            through_headend(http, url, -1, 8)
            results: dict[str, list[tuple[float, float, int]]] = {"direct": [], "headend": []}
            for rep in range(args.reps):
                results["direct"].append(direct(llama, rep, args.max_tokens))
                time.sleep(SETTLE)
                results["headend"].append(through_headend(http, url, rep, args.max_tokens))
                time.sleep(SETTLE)
    finally:
        stop_server(server)

    def stat(side: str, index: int, how: str) -> float:
        values = [run[index] for run in results[side]]
        return {"p50": statistics.median, "min": min, "max": max}[how](values)

    print("| side | TTFT p50 (ms) | TTFT min (ms) | tok/s p50 | tok/s max | tokens | runs |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for side in ("direct", "headend"):
        print(
            f"| {side} | {stat(side, 0, 'p50') * 1000:.1f} | {stat(side, 0, 'min') * 1000:.1f} "
            f"| {stat(side, 1, 'p50'):.1f} | {stat(side, 1, 'max'):.1f} "
            f"| {int(stat(side, 2, 'p50'))} | {args.reps} |"
        )
    for how in ("p50", "max"):
        ratio = stat("headend", 1, how) / stat("direct", 1, how)
        print(f"tokens/s, headend / direct ({how}): {ratio:.1%}")
    for how in ("p50", "min"):
        added = (stat("headend", 0, how) - stat("direct", 0, how)) * 1000
        print(f"first token, headend - direct ({how}): {added:+.1f} ms")
    print(f"(llama-cpp-python n_threads={threads}, max_tokens={args.max_tokens}, greedy)")


if __name__ == "__main__":
    main()
