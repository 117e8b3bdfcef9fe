"""Values from the store kept for a second, without making requests wait for them.

Every request checks its key, and a key's record is read from the store at most once a
second (a revoked key is refused everywhere within that). Read naively, the first request
after the second waits for the store, and so does every request arriving with it: 16
connections made 16 lookups, each a hop to the store's thread that a busy event loop
answers milliseconds late, and every connection stalled together once a second (headend's
p99 at 16 connections was 60-190 ms against the bare proxy's 21-27). Here:

- a key is looked up once at a time: whoever asks while a lookup runs waits for that one;
- a key asked for in the last ``ahead`` seconds of its life is looked up again in the
  background while the value in hand is served, so under steady traffic nobody waits;
- a value is never served more than ``ttl`` seconds after its lookup began.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

LIMIT = 10_000  # entries; past it the cache starts again empty (keys are few, logins more)


class FreshCache(Generic[K, V]):
    def __init__(
        self,
        lookup: Callable[[K], Awaitable[V]],
        ttl: float,
        ahead: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._ttl = ttl
        self._ahead = ahead
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._pending: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K) -> V:
        entry = self._entries.get(key)
        if entry is not None:
            expires, value = entry
            now = self._clock()
            if now < expires:
                if now >= expires - self._ahead and key not in self._pending:
                    self._start(key)  # served as it is; the next ones get the new value
                return value
        pending = self._pending.get(key)
        if pending is None:
            pending = self._start(key)
        # One waiter cancelled (its client left) does not cancel the lookup for the others.
        return await asyncio.shield(pending)

    def forget(self, key: K) -> None:
        """Look ``key`` up again next time (this instance changed it)."""
        self._entries.pop(key, None)

    def _start(self, key: K) -> asyncio.Future[V]:
        # In a context of its own: the lookup serves every request, not the one that began it
        # (its log lines carry no request's id).
        lookup = asyncio.get_running_loop().create_task(
            self._load(key, self._clock()), context=contextvars.Context()
        )
        self._pending[key] = lookup

        def done(future: asyncio.Future[V]) -> None:
            if self._pending.get(key) is future:
                del self._pending[key]
            if not future.cancelled():
                future.exception()  # retrieved: a failed refresh is tried again by the next request

        lookup.add_done_callback(done)
        return lookup

    async def _load(self, key: K, began: float) -> V:
        value = await self._lookup(key)
        if len(self._entries) >= LIMIT:
            self._entries.clear()
        self._entries[key] = (began + self._ttl, value)
        return value
