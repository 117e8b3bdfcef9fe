"""What a limiter does, whatever keeps its state.

Rates are token buckets refilled continuously: ``rpm`` requests and ``tpm`` tokens, each
bucket full after a minute of rest. A request needs one request in the bucket and a token
level above zero; its tokens are spent when its answer is done (they are not known before),
so a request may take the token level below zero, and the key then waits until it refills.

Concurrency is counted in named pools (a key's, an agent's, everyone's): a request runs when
its pool has a free slot, else it waits in a bounded FIFO queue for a limited time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

WINDOW = 60.0  # seconds in which a bucket refills from empty to full


@dataclass(frozen=True, slots=True)
class Rates:
    """A key's rates; None: no limit."""

    rpm: int | None = None
    tpm: int | None = None

    def __bool__(self) -> bool:
        return bool(self.rpm or self.tpm)


NO_RATES = Rates()


@dataclass(frozen=True, slots=True)
class Levels:
    """What the buckets held after a request was let in or refused."""

    allowed: bool
    requests: float  # left in the request bucket
    tokens: float  # left in the token bucket; below zero after a big answer


@dataclass(frozen=True, slots=True)
class Queueing:
    """How long and how many requests wait for a slot."""

    max_waiting: int
    timeout: float


class QueueFull(Exception):
    """The pool's queue is full: refused at once."""


class QueueTimeout(Exception):
    """No slot came free within the queue timeout."""


class Slot(Protocol):
    async def release(self) -> None:
        """Give the slot back; a second call does nothing."""


class Limiter(Protocol):
    async def start(self) -> None: ...

    async def take(self, key: str, rates: Rates) -> Levels:
        """Let one request of ``key`` in if its rates allow, and say what is left."""
        ...

    async def spend(self, key: str, rates: Rates, tokens: int) -> None:
        """Take a finished request's tokens from the key's token bucket."""

    async def acquire(self, pool: str, size: int, queueing: Queueing) -> Slot:
        """A slot of ``pool`` (``size`` at once), waiting in FIFO order.

        Raises ``QueueFull`` or ``QueueTimeout``.
        """
        ...

    async def ping(self) -> None:
        """Raise unless the limiter's shared state answers (what readiness asks)."""

    async def close(self) -> None: ...


def decide(rates: Rates, requests: float, tokens: float) -> Levels:
    """Let a request in when a request and some tokens are left (the rule both backends run;
    the Redis one runs it in Lua, see ``headend.limits.scripts``)."""
    allowed = (not rates.rpm or requests >= 1) and (not rates.tpm or tokens > 0)
    if allowed and rates.rpm:
        requests -= 1
    return Levels(allowed, requests, tokens)


def refilled(level: float, capacity: int, elapsed: float) -> float:
    return min(float(capacity), level + elapsed * capacity / WINDOW)
