"""Limits held by this process alone: enough for one instance."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from headend.limits.base import (
    Bucket,
    Entry,
    Levels,
    Pool,
    QueueFull,
    Queueing,
    QueueTimeout,
    Slot,
    Waiting,
    decide,
    not_watched,
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

    async def acquire(self, pool: Pool, queueing: Queueing, waiting: Waiting) -> None:
        if self.running < pool.size and not self.waiters:
            self.running += 1
            return
        if len(self.waiters) >= queueing.max_waiting:
            raise QueueFull(pool.name)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        waiting(pool.name, True)
        try:
            async with asyncio.timeout(queueing.timeout):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as the wait ended: pass it on
            elif waiter in self.waiters:  # a release may have dropped it already
                self.waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise QueueTimeout(pool.name) from None
            raise
        finally:
            waiting(pool.name, False)

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

    async def enter(
        self,
        buckets: Sequence[Bucket],
        pools: Sequence[Pool],
        queueing: Queueing,
        waiting: Waiting = not_watched,
    ) -> Entry:
        entry = Entry(self._take(buckets))
        if entry.refused is not None:
            return entry
        try:
            for pool in pools:
                found = self._pools.get(pool.name)
                if found is None:
                    found = self._pools[pool.name] = FifoPool()
                started = time.perf_counter()
                await found.acquire(pool, queueing, waiting)
                entry.slots.append(_MemorySlot(self, pool.name))
                entry.waited.append(time.perf_counter() - started)
        except BaseException:
            await self.leave(entry.slots, None, 0)
            raise
        return entry

    def _take(self, buckets: Sequence[Bucket]) -> list[Levels]:
        """Every bucket's decision; requests taken only when all allow."""
        now = self._clock()
        found, decided = [], []
        for bucket in buckets:
            rates = bucket.rates
            requests = self._level(f"{bucket.name}:r", rates.rpm, now) if rates.rpm else None
            tokens = self._level(f"{bucket.name}:t", rates.tpm, now) if rates.tpm else None
            found.append(requests)
            decided.append(
                decide(rates, requests.level if requests else 0.0, tokens.level if tokens else 0.0)
            )
        if not all(levels.allowed for levels in decided):  # nothing taken: as they were
            return [
                Levels(levels.allowed, requests.level if requests else 0.0, levels.tokens)
                for requests, levels in zip(found, decided, strict=True)
            ]
        for requests, levels in zip(found, decided, strict=True):
            if requests is not None:
                requests.level = levels.requests
        return decided

    async def leave(self, slots: Sequence[Slot], spend: Bucket | None, tokens: int) -> None:
        for slot in slots:
            await slot.release()
        if spend is not None and spend.rates.tpm:
            self._level(f"{spend.name}:t", spend.rates.tpm, self._clock()).level -= tokens

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
