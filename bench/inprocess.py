"""headend's app without a server: what its own code costs per request.

ASGI messages are handed to the app directly (no uvicorn, no client sockets), 16 requests at
a time, relaying to nginx's fixed answer through headend's upstream client, and the
process's CPU time per request is reported, for:

  headend   the app as ``headend serve`` builds it (a key checked, limits, accounting,
            metrics, request ids), a plain model route
  floor     a minimal app on the same upstream client: read the body, pick the upstream
            by model, relay the answer
  bare      bench/bare_proxy.py, the reference bench/gateway.py names (Starlette + aiohttp)

    bench/setup.sh                                  # nginx
    .venv/bin/python bench/inprocess.py [--requests 8000] [--rounds 2] [--only headend:json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from gateway import nginx_conf, stop  # noqa: E402
from peers import Upstreams, headend_config  # noqa: E402
from tests.conftest import free_port  # noqa: E402

from headend.app import create_app  # noqa: E402
from headend.config import load_settings  # noqa: E402
from headend.providers.h1 import H1Client  # noqa: E402
from headend.server.cancel import DISCONNECT, Disconnect  # noqa: E402

CONCURRENCY = 16


def floor_app(upstreams: dict[str, str]) -> ASGIApp:
    client = H1Client()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await client.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = (await receive())["body"]
        url = upstreams[json.loads(body)["model"]]
        async with await client.request(url, body, {"content-type": "application/json"}) as answer:
            data = await answer.read()
        await Response(data, media_type="application/json")(scope, receive, send)

    return app


def bare_app(upstreams: dict[str, str]) -> ASGIApp:
    os.environ["BARE_UPSTREAMS"] = ",".join(f"{k}={v}" for k, v in upstreams.items())
    import bare_proxy

    bare_proxy.session = None  # its session belongs to the loop that made it

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await bare_proxy.app(scope, receive, send)
            return
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        if bare_proxy.session is not None:
            await bare_proxy.session.close()
        await send({"type": "lifespan.shutdown.complete"})

    return app


async def measure(app: ASGIApp, key: str, stream: bool, requests: int) -> float:
    """CPU µs per request."""
    lifespan: asyncio.Queue[Message] = asyncio.Queue()
    started = asyncio.Event()

    async def life_send(message: Message) -> None:
        if message["type"].startswith("lifespan.startup"):
            started.set()

    await lifespan.put({"type": "lifespan.startup"})
    life = asyncio.ensure_future(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, lifespan.get, life_send)
    )
    await started.wait()
    body: dict[str, Any] = {
        "model": "bench-sse" if stream else "bench-json",
        "messages": [{"role": "user", "content": "Hello"}],
    }
    if stream:
        body["stream"] = True
    raw = orjson.dumps(body)
    headers = [
        (b"host", b"127.0.0.1"),
        (b"authorization", f"Bearer {key}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(raw)).encode()),
    ]

    async def one() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
            # as headend's server protocol tells of a client leaving (one per connection)
            "extensions": {DISCONNECT: {"signal": Disconnect()}},
        }
        done = asyncio.Event()
        read = False
        status: list[int] = []

        async def receive() -> Message:
            nonlocal read
            if not read:
                read = True
                return {"type": "http.request", "body": raw, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            elif not message.get("more_body"):
                done.set()

        await app(scope, receive, send)
        done.set()
        if status != [200]:
            raise RuntimeError(f"answered {status}")

    async def loop(count: int) -> None:
        for _ in range(count):
            await one()

    for _ in range(300):
        await one()
    gc.collect()
    gc.freeze()  # as headend serve does once started
    cpu = time.process_time()
    await asyncio.gather(*(loop(requests // CONCURRENCY) for _ in range(CONCURRENCY)))
    spent = (time.process_time() - cpu) / requests * 1e6
    await lifespan.put({"type": "lifespan.shutdown"})
    await life
    gc.unfreeze()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=8000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--only", help="one app and answer, e.g. headend:json (to profile it alone)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="headend-inprocess-"))
    json_port, sse_port = free_port(), free_port()
    (work / "nginx.conf").write_text(nginx_conf(work, json_port, sse_port))
    (work / "agents").mkdir()
    config = work / "headend.yaml"
    config.write_text(
        headend_config(Upstreams(json_port, sse_port), operator=False)
        + f"agents_dir: {work / 'agents'}\nserver: {{access_log: false}}\n"
    )
    created = subprocess.run(
        [
            *(sys.executable, "-m", "headend", "keys", "create", "--config", str(config)),
            *("--name", "bench", "--scope", "chat"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    key = created.stdout.split("\n")[1].strip()
    upstreams = {
        "bench-json": f"http://127.0.0.1:{json_port}/v1/chat/completions",
        "bench-sse": f"http://127.0.0.1:{sse_port}/v1/chat/completions",
    }
    nginx = subprocess.Popen(["nginx", "-c", str(config.parent / "nginx.conf")])
    time.sleep(0.5)
    print("| round | app | answer | CPU µs/request |\n|---:|---|---|---:|")
    try:
        for round_ in range(1, args.rounds + 1):
            for name in ("headend", "floor", "bare"):
                for mode in ("json", "stream"):
                    if args.only and args.only != f"{name}:{mode}":
                        continue
                    app = (
                        create_app(load_settings(config))
                        if name == "headend"
                        else floor_app(upstreams)
                        if name == "floor"
                        else bare_app(upstreams)
                    )
                    cpu = uvloop.run(measure(app, key, mode == "stream", args.requests))
                    print(f"| {round_} | {name} | {mode} | {cpu:.0f} |", flush=True)
    finally:
        stop(nginx)


if __name__ == "__main__":
    main()
