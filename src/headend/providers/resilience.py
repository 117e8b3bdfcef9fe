"""Per-provider timeouts, retries and cooldown: their settings and their arithmetic."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Timeouts(_Section):
    connect: float = Field(10.0, gt=0)
    first_token: float = Field(120.0, gt=0)  # until the response (or the first chunk) arrives
    total: float = Field(600.0, gt=0)


class Retry(_Section):
    attempts: int = Field(3, ge=1, le=10)  # per provider, the first try included
    backoff: float = Field(0.5, ge=0)  # the first retry waits up to this; doubles each time
    max_backoff: float = Field(8.0, ge=0)
    max_retry_after: float = Field(30.0, ge=0)  # a longer Retry-After moves on instead


class Cooldown(_Section):
    after_failures: int = Field(3, ge=1)  # consecutive failed requests
    seconds: float = Field(30.0, ge=0)


class Resilience(_Section):
    timeout: Timeouts = Field(default_factory=Timeouts)
    retry: Retry = Field(default_factory=Retry)
    cooldown: Cooldown = Field(default_factory=Cooldown)


class ResilientConfig(Resilience):
    """Base of every provider section: the resilience keys sit beside the type's own."""

    def resilience(self) -> Resilience:
        return Resilience(timeout=self.timeout, retry=self.retry, cooldown=self.cooldown)


def backoff_delay(retry: Retry, attempt: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter before retry number ``attempt`` (1-based)."""
    ceiling = min(retry.max_backoff, retry.backoff * (2 ** (attempt - 1)))
    return (rng or random).uniform(0, ceiling)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, or ``Retry-After`` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)
