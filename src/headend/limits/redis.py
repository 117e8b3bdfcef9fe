"""Limits shared by every instance through Redis (``redis: redis://…`` in headend.yaml).

Each decision is one Lua script run atomically on Redis (see ``headend.limits.scripts``).
Slots are leases: held ones are renewed every few seconds, so an instance that dies gives its
slots back within ``LEASE`` seconds. A waiter asks again every ``POLL`` seconds, or at once
when a slot of its pool is given back on the same instance.

When Redis cannot be reached, each instance falls back to limits of its own (in memory) and
logs it, rather than refusing every request: limits degrade, serving goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from headend.errors import ConfigError
from headend.limits.base import Levels, QueueFull, Queueing, QueueTimeout, Rates, Slot
from headend.limits.memory import MemoryLimiter
from headend.limits.scripts import ACQUIRE, RATE, RELEASE, RENEW

log = logging.getLogger(__name__)

PREFIX = "headend:"
LEASE = 30.0  # seconds a held slot lasts without renewal
RENEW_EVERY = 5.0
WAITER_LEASE = 3.0  # seconds a queued request stays queued without asking again
POLL = 0.05


def pool_keys(pool: str) -> list[str]:
    # One hash tag per pool: a Redis Cluster keeps a pool's keys on one node.
    base = f"{PREFIX}pool:{{{pool}}}"
    return [f"{base}:holders", f"{base}:queue", f"{base}:waiting", f"{base}:tickets"]


class RedisDown(Exception):
    """Redis did not answer; the caller falls back to this process's own limits."""


@dataclass(slots=True)
class _RedisSlot:
    limiter: RedisLimiter
    pool: str
    id: str
    held: bool = True

    async def release(self) -> None:
        if self.held:
            self.held = False
            await self.limiter._release(self)


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
        self._rate = self._redis.register_script(RATE)
        self._acquire = self._redis.register_script(ACQUIRE)
        self._release_script = self._redis.register_script(RELEASE)
        self._renew = self._redis.register_script(RENEW)
        self._held: dict[str, _RedisSlot] = {}
        self._freed: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._renewer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self._redis.ping()
        except Exception as exc:
            raise ConfigError([f"redis: cannot reach {self._where()}: {exc}"]) from exc
        self._renewer = asyncio.create_task(self._renew_forever())

    async def ping(self) -> None:
        await self._redis.ping()

    def _where(self) -> str:
        """The URL without a password."""
        if "@" in self.url:
            scheme, _, rest = self.url.partition("://")
            return f"{scheme}://…@{rest.rsplit('@', 1)[1]}"
        return self.url

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except Exception as exc:
            now = asyncio.get_running_loop().time()
            if now - self._warned_at > 10:  # once in a while, not once per request
                self._warned_at = now
                log.error("redis failed (%s): limits are per instance until it is back", exc)
            raise RedisDown from exc

    async def take(self, key: str, rates: Rates) -> Levels:
        try:
            return await self._rate_step(key, rates, -1)
        except RedisDown:
            return await self._local.take(key, rates)

    async def spend(self, key: str, rates: Rates, tokens: int) -> None:
        if rates.tpm:
            try:
                await self._rate_step(key, rates, tokens)
            except RedisDown:
                await self._local.spend(key, rates, tokens)

    async def _rate_step(self, key: str, rates: Rates, spend: int) -> Levels:
        base = f"{PREFIX}rate:{{{key}}}"
        allowed, requests, tokens = await self._call(
            self._rate,
            [f"{base}:requests", f"{base}:tokens"],
            [rates.rpm or 0, rates.tpm or 0, spend],
        )
        return Levels(bool(int(allowed)), float(requests), float(tokens))

    async def acquire(self, pool: str, size: int, queueing: Queueing) -> Slot:
        try:
            return await self._acquire_shared(pool, size, queueing)
        except RedisDown:
            return await self._local.acquire(pool, size, queueing)

    async def _acquire_shared(self, pool: str, size: int, queueing: Queueing) -> _RedisSlot:
        slot = _RedisSlot(self, pool, secrets.token_hex(8))
        keys = pool_keys(pool)
        args = [slot.id, size, queueing.max_waiting, int(LEASE * 1000), int(WAITER_LEASE * 1000)]
        freed = self._freed[pool]
        try:
            async with asyncio.timeout(queueing.timeout):
                while True:
                    answer = int(await self._call(self._acquire, keys, args))
                    if answer == 1:
                        self._held[slot.id] = slot
                        return slot
                    if answer == -1:
                        raise QueueFull
                    freed.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(POLL):
                            await freed.wait()
        except BaseException as exc:
            # Leave the queue (or the slot, if it was granted as the wait ended).
            if not isinstance(exc, RedisDown):
                await asyncio.shield(self._forget(slot))
            if isinstance(exc, TimeoutError):
                raise QueueTimeout from None
            raise

    async def _forget(self, slot: _RedisSlot) -> None:
        slot.held = False
        self._held.pop(slot.id, None)
        try:
            await self._release_script(keys=pool_keys(slot.pool)[:3], args=[slot.id])
        except Exception as exc:  # its lease ends by itself, LEASE seconds on
            log.warning("giving a concurrency slot of '%s' back failed: %s", slot.pool, exc)

    async def _release(self, slot: _RedisSlot) -> None:
        await asyncio.shield(self._forget(slot))
        self._freed[slot.pool].set()

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
