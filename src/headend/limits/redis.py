"""Limits shared by every instance through Redis (``redis: redis://…`` in headend.yaml).

A request enters in one round trip (the ``ENTER`` script takes its buckets and every pool's
slot) and leaves in one (``LEAVE``: slots back, tokens spent), unless it has to wait for a
slot: a waiter asks again every ``POLL`` seconds, or at once when a slot of its pool is given
back on the same instance. Slots are leases: held ones are renewed every few seconds, so an
instance that dies gives its slots back within ``LEASE`` seconds.

Every key carries one hash tag, so a Redis Cluster keeps them on one node, as scripts that
touch several keys need.

When Redis cannot be reached, each instance falls back to limits of its own (in memory) and
logs it, rather than refusing every request: limits degrade, serving goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from headend.errors import ConfigError
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
    not_watched,
)
from headend.limits.memory import MemoryLimiter
from headend.limits.scripts import ENTER, LEAVE, RENEW
from headend.urls import without_credentials

log = logging.getLogger(__name__)

PREFIX = "headend:{limits}:"  # the one hash tag
LEASE = 30.0  # seconds a held slot lasts without renewal
RENEW_EVERY = 5.0
WAITER_LEASE = 3.0  # seconds a queued request stays queued without asking again
POLL = 0.05


def pool_keys(pool: str) -> list[str]:
    """A pool's holders, queue, waiters' heartbeats and ticket counter."""
    base = f"{PREFIX}pool:{pool}"
    return [f"{base}:holders", f"{base}:queue", f"{base}:waiting", f"{base}:tickets"]


def bucket_keys(name: str) -> list[str]:
    """A bucket's request and token levels."""
    base = f"{PREFIX}rate:{name}"
    return [f"{base}:requests", f"{base}:tokens"]


class RedisDown(Exception):
    """Redis did not answer; the caller falls back to this process's own limits."""


@dataclass(slots=True)
class _RedisSlot:
    limiter: RedisLimiter
    pool: str
    id: str
    held: bool = True

    async def release(self) -> None:
        await self.limiter.leave([self], None, 0)


class RedisLimiter:
    def __init__(self, url: str) -> None:
        try:
            from redis import asyncio as aioredis
        except ModuleNotFoundError as exc:
            raise ConfigError(
                ["redis: shared limits need the redis package: pip install 'headend[redis]'"]
            ) from exc
        self.url = url
        self._redis: Any = aioredis.from_url(
            url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2
        )
        self._local = MemoryLimiter()
        self._warned_at = -1e9
        self._enter = self._redis.register_script(ENTER)
        self._leave = self._redis.register_script(LEAVE)
        self._renew = self._redis.register_script(RENEW)
        self._held: dict[tuple[str, str], _RedisSlot] = {}
        self._freed: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._renewer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self._redis.ping()
        except Exception as exc:
            raise ConfigError(
                [f"redis: cannot reach {without_credentials(self.url)}: {exc}"]
            ) from exc
        self._renewer = asyncio.create_task(self._renew_forever())

    async def ping(self) -> None:
        await self._redis.ping()

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except Exception as exc:
            now = asyncio.get_running_loop().time()
            if now - self._warned_at > 10:  # once in a while, not once per request
                self._warned_at = now
                log.error("redis failed (%s): limits are per instance until it is back", exc)
            raise RedisDown from exc

    async def enter(
        self,
        buckets: Sequence[Bucket],
        pools: Sequence[Pool],
        queueing: Queueing,
        waiting: Waiting = not_watched,
    ) -> Entry:
        entry = Entry([])
        try:
            await self._enter_shared(entry, buckets, pools, queueing, waiting)
        except RedisDown:
            self._drop(entry.slots)  # their leases end by themselves
            local = await self._local.enter(
                [] if entry.levels else buckets, pools, queueing, waiting
            )
            entry.levels = entry.levels or local.levels
            entry.slots, entry.waited = local.slots, local.waited
        except BaseException:
            await asyncio.shield(self.leave(entry.slots, None, 0))
            raise
        return entry

    async def _enter_shared(
        self,
        entry: Entry,
        buckets: Sequence[Bucket],
        pools: Sequence[Pool],
        queueing: Queueing,
        waiting: Waiting,
    ) -> None:
        """Buckets and pools in one round trip; more only while waiting for a slot."""
        id = secrets.token_hex(8)
        fixed = [id, queueing.max_waiting, int(LEASE * 1000), int(WAITER_LEASE * 1000)]
        keys = [key for bucket in buckets for key in bucket_keys(bucket.name)]
        rates = [n for bucket in buckets for n in (bucket.rates.rpm or 0, bucket.rates.tpm or 0)]
        deadline = asyncio.get_running_loop().time() + queueing.timeout
        started = time.perf_counter()
        rest = list(pools)
        try:
            while True:
                answer = await self._call(
                    self._enter,
                    keys + [key for pool in rest for key in pool_keys(pool.name)],
                    [len(keys) // 2, len(rest), *fixed, *rates, *(pool.size for pool in rest)],
                )
                verdict, granted = int(answer[0]), int(answer[1])
                if keys:  # the buckets are taken (or refused) once, by the first call
                    entry.levels = levels_of(answer[2:])
                    keys, rates = [], []
                    if verdict == -2:
                        return
                for pool in rest[:granted]:
                    slot = _RedisSlot(self, pool.name, id)
                    self._held[pool.name, id] = slot
                    entry.slots.append(slot)
                    now = time.perf_counter()
                    entry.waited.append(now - started)
                    started = now
                rest = rest[granted:]
                if verdict == 1:
                    return
                if verdict == -1:
                    raise QueueFull(rest[0].name)
                await self._wait(rest[0].name, deadline, waiting)
        except BaseException as exc:
            # Out of the queue, or of a slot granted by a call whose answer never came.
            if rest and not isinstance(exc, RedisDown):
                await asyncio.shield(self._forget([_RedisSlot(self, p.name, id) for p in rest]))
            raise

    async def _wait(self, pool: str, deadline: float, waiting: Waiting) -> None:
        """Until a slot of ``pool`` may have come free (then the caller asks again)."""
        loop = asyncio.get_running_loop()
        left = deadline - loop.time()
        if left <= 0:
            raise QueueTimeout(pool)
        freed = self._freed[pool]
        freed.clear()
        waiting(pool, True)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(POLL, left)):
                    await freed.wait()
        finally:
            waiting(pool, False)

    async def leave(self, slots: Sequence[Slot], spend: Bucket | None, tokens: int) -> None:
        shared = [slot for slot in slots if isinstance(slot, _RedisSlot) and slot.held]
        for slot in slots:
            if not isinstance(slot, _RedisSlot):
                await slot.release()  # taken while Redis was away
        if spend is not None and not spend.rates.tpm:
            spend = None
        if not shared and spend is None:
            return
        try:
            await asyncio.shield(self._give_back(shared, spend, tokens))
        except RedisDown:
            if spend is not None:
                await self._local.leave([], spend, tokens)
        finally:
            for slot in shared:
                self._freed[slot.pool].set()

    async def _give_back(
        self, slots: Sequence[_RedisSlot], spend: Bucket | None, tokens: int
    ) -> None:
        """One round trip per request's slots (they share an id), the spending with the first."""
        self._drop(slots)
        requests: dict[str, list[_RedisSlot]] = {}
        for slot in slots:
            requests.setdefault(slot.id, []).append(slot)
        for id, mine in list(requests.items()) or [("", [])]:
            keys = [key for slot in mine for key in pool_keys(slot.pool)[:3]]
            tpm = 0
            if spend is not None:
                keys.append(bucket_keys(spend.name)[1])
                tpm, spend = spend.rates.tpm or 0, None
            await self._call(self._leave, keys, [id, len(mine), tpm, tokens])

    def _drop(self, slots: Sequence[Slot]) -> None:
        for slot in slots:
            if isinstance(slot, _RedisSlot):
                slot.held = False
                self._held.pop((slot.pool, slot.id), None)

    async def _forget(self, slots: list[_RedisSlot]) -> None:
        """Leave queues (or slots granted as a wait ended); a failure is left to leases."""
        with contextlib.suppress(RedisDown):
            await self._give_back(slots, None, 0)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            for slot in list(self._held.values()):
                try:
                    await self._renew(
                        keys=pool_keys(slot.pool)[:1], args=[slot.id, int(LEASE * 1000)]
                    )
                except Exception as exc:  # tried again next round; the lease outlasts a few
                    log.warning("renewing a concurrency slot failed: %s", exc)

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
        for slot in list(self._held.values()):
            await slot.release()
        await self._redis.aclose()


def levels_of(flat: Sequence[Any]) -> list[Levels]:
    """The ``ENTER`` script's levels: allowed, requests, tokens per bucket."""
    return [
        Levels(bool(int(flat[i])), float(flat[i + 1]), float(flat[i + 2]))
        for i in range(0, len(flat), 3)
    ]
