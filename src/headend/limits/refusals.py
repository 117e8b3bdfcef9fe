"""What a key's and a visitor's buckets say back: OpenAI's rate limit headers, when to
come back, and the 429 of a widget visitor (or client address) over its rate."""

from __future__ import annotations

import math

from headend.errors import RateLimited
from headend.limits.base import WINDOW, Levels, Limiter, Rates, take


def duration(seconds: float) -> str:
    """Like OpenAI's: ``20ms``, ``1.5s``, ``6m0s``."""
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60:
        return f"{math.ceil(seconds * 10) / 10:g}s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


def _refill_time(missing: float, capacity: int) -> float:
    return missing * WINDOW / capacity


def rate_headers(rates: Rates, levels: Levels) -> dict[str, str]:
    headers = {}
    for kind, capacity, level in (
        ("requests", rates.rpm, levels.requests),
        ("tokens", rates.tpm, levels.tokens),
    ):
        if capacity:
            headers[f"x-ratelimit-limit-{kind}"] = str(capacity)
            headers[f"x-ratelimit-remaining-{kind}"] = str(max(math.floor(level), 0))
            headers[f"x-ratelimit-reset-{kind}"] = duration(
                _refill_time(capacity - level, capacity)
            )
    return headers


def retry_after(rates: Rates, levels: Levels) -> float:
    """Seconds until a refused request would be let in."""
    waits = [0.0]
    if rates.rpm and levels.requests < 1:
        waits.append(_refill_time(1 - levels.requests, rates.rpm))
    if rates.tpm and levels.tokens <= 0:
        waits.append(_refill_time(-levels.tokens + 1, rates.tpm))
    return max(waits)


def retry_headers(seconds: float) -> dict[str, str]:
    """``Retry-After`` in whole seconds, and OpenAI's SDKs' finer ``retry-after-ms``."""
    return {
        "retry-after": str(max(math.ceil(seconds), 1)),
        "retry-after-ms": str(math.ceil(seconds * 1000)),
    }


def visitor_refusal(rates: Rates, wait: float, who: str) -> RateLimited:
    return RateLimited(
        f"Rate limit reached for this {who}: {rates.rpm} requests per minute. "
        f"Try again in {wait:.1f}s.",
        kind="requests",
        headers=retry_headers(wait),
    )


async def take_visitor_rate(
    limiter: Limiter, bucket: str, rates: Rates, who: str = "visitor"
) -> None:
    """One request from a widget visitor's (or client address's) bucket, or 429."""
    levels = await take(limiter, bucket, rates)
    if not levels.allowed:
        raise visitor_refusal(rates, retry_after(rates, levels), who)
