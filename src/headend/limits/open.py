"""The limiter a config asks for: Redis when ``redis:`` is set, else this process's memory."""

from __future__ import annotations

from headend.limits.base import Limiter
from headend.limits.memory import MemoryLimiter


def open_limiter(redis_url: str | None) -> Limiter:
    if redis_url:
        from headend.limits.redis import RedisLimiter

        return RedisLimiter(redis_url)
    return MemoryLimiter()
