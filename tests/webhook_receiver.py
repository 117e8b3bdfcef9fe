"""A webhook endpoint for the tests: a real HTTP server on loopback that keeps what it is
sent and answers each path with the statuses it is told, in turn (then 200)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class Hook:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    at: float  # time.monotonic() when it arrived


class WebhookReceiver:
    def __init__(self) -> None:
        self._statuses: dict[str, deque[int]] = defaultdict(deque)
        self._hooks: list[Hook] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def answer(self, path: str, *statuses: int) -> None:
        with self._lock:
            self._statuses[path] = deque(statuses)

    def hooks(self, path: str | None = None) -> list[Hook]:
        with self._lock:
            return [hook for hook in self._hooks if path is None or hook.path == path]

    def reset(self) -> None:
        with self._lock:
            self._statuses.clear()
            self._hooks.clear()

    def start(self) -> None:
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        if not ready.wait(10):
            raise RuntimeError("webhook receiver did not start")

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    async def _take(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        body = await request.read()
        with self._lock:
            statuses = self._statuses[path]
            status = statuses.popleft() if statuses else 200
            self._hooks.append(Hook(path, dict(request.headers), body, status, time.monotonic()))
        return web.Response(status=status, text="ok" if status < 300 else "no")

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/{path}", self._take)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        self._loop.run_forever()
