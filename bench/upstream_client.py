"""The upstream HTTP client alone: aiohttp's ClientSession against headend.providers.h1.

In-process, 16 concurrent loops POST a small chat body to nginx answering a fixed
chat.completion (or a fixed SSE stream, read to its end) and the process's CPU time per
request is reported; nothing else runs in the process.

    bench/setup.sh                                     # nginx
    .venv/bin/python bench/upstream_client.py [--requests 10000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from gateway import nginx_conf, stop  # noqa: E402
from tests.conftest import free_port  # noqa: E402

from headend.providers.h1 import H1Client  # noqa: E402

BODY = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "Hello"}]})
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-up"}
CONCURRENCY = 16


async def timed(one: Callable[[], Awaitable[None]], requests: int) -> tuple[float, float]:
    """CPU µs per request and requests per second, after a warm-up."""
    for _ in range(200):
        await one()

    async def loop(count: int) -> None:
        for _ in range(count):
            await one()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(loop(requests // CONCURRENCY) for _ in range(CONCURRENCY)))
    return (time.process_time() - cpu) / requests * 1e6, requests / (time.perf_counter() - wall)


async def with_aiohttp(url: str, stream: bool, requests: int) -> tuple[float, float]:
    connector = aiohttp.TCPConnector(limit=1024, ttl_dns_cache=300, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, connect=None)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
    ) as session:

        async def one() -> None:
            async with session.post(url, data=BODY, headers=HEADERS, timeout=timeout) as answer:
                if stream:
                    while await answer.content.readany():
                        pass
                else:
                    await answer.read()

        return await timed(one, requests)


async def with_h1(url: str, stream: bool, requests: int) -> tuple[float, float]:
    client = H1Client()

    async def one() -> None:
        async with await client.request(url, BODY, HEADERS, 10) as answer:
            if stream:
                while await answer.readany():
                    pass
            else:
                await answer.read()

    try:
        return await timed(one, requests)
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="headend-client-"))
    json_port, sse_port = free_port(), free_port()
    (work / "nginx.conf").write_text(nginx_conf(work, json_port, sse_port))
    nginx = subprocess.Popen(["nginx", "-c", str(work / "nginx.conf")], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    clients = {"aiohttp": with_aiohttp, "h1": with_h1}
    print("| round | client | answer | CPU µs/request | req/s |\n|---:|---|---|---:|---:|")
    try:
        for round_ in range(1, args.rounds + 1):
            for name, client in clients.items():
                for mode, port in (("json", json_port), ("stream", sse_port)):
                    url = f"http://127.0.0.1:{port}/v1/chat/completions"
                    cpu, rate = uvloop.run(client(url, mode == "stream", args.requests))
                    print(f"| {round_} | {name} | {mode} | {cpu:.1f} | {rate:,.0f} |", flush=True)
    finally:
        stop(nginx)


if __name__ == "__main__":
    main()
