"""Limits held by this process alone: enough for one instance."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from headend.limits.base import (
    Levels,
    QueueFull,
    Queueing,
    QueueTimeout,
    Rates,
    decide,
    refilled,
)


@dataclass(slots=True)
class _Bucket:
    level: float
    at: float


@dataclass(slots=True)
class FifoPool:
    """A semaphore that hands a freed slot to the longest waiter, never to a newcomer."""

    running: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)

    async def acquire(self, size: int, queueing: Queueing) -> None:
        if self.running < size and not self.waiters:
            self.running += 1
            return
        if len(self.waiters) >= queueing.max_waiting:
            raise QueueFull
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            async with asyncio.timeout(queueing.timeout):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as the wait ended: pass it on
            elif waiter in self.waiters:  # a release may have dropped it already
                self.waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise QueueTimeout from None
            raise

    def release(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on; ``running`` stays
                return
        self.running -= 1

    @property
    def idle(self) -> bool:
        return self.running == 0 and not self.waiters


@dataclass(slots=True)
class _MemorySlot:
    limiter: MemoryLimiter
    pool: str
    held: bool = True

    async def release(self) -> None:
        if self.held:
            self.held = False
            self.limiter._release(self.pool)


class MemoryLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._pools: dict[str, FifoPool] = {}

    def _level(self, name: str, capacity: int, now: float) -> _Bucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = _Bucket(float(capacity), now)
        else:
            bucket.level = refilled(bucket.level, capacity, now - bucket.at)
            bucket.at = now
        return bucket

    async def take(self, key: str, rates: Rates) -> Levels:
        now = self._clock()
        requests = self._level(f"{key}:r", rates.rpm, now) if rates.rpm else None
        tokens = self._level(f"{key}:t", rates.tpm, now) if rates.tpm else None
        levels = decide(rates, requests.level if requests else 0.0, tokens.level if tokens else 0.0)
        if requests is not None:
            requests.level = levels.requests
        return levels

    async def spend(self, key: str, rates: Rates, tokens: int) -> None:
        if rates.tpm:
            self._level(f"{key}:t", rates.tpm, self._clock()).level -= tokens

    async def acquire(self, pool: str, size: int, queueing: Queueing) -> _MemorySlot:
        found = self._pools.get(pool)
        if found is None:
            found = self._pools[pool] = FifoPool()
        await found.acquire(size, queueing)
        return _MemorySlot(self, pool)

    def _release(self, pool: str) -> None:
        found = self._pools[pool]
        found.release()
        if found.idle:
            del self._pools[pool]

    async def start(self) -> None:
        pass

    async def ping(self) -> None:
        """This process's memory always answers."""

    async def close(self) -> None:
        self._buckets.clear()
