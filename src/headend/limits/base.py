"""What a limiter does, whatever keeps its state.

Rates are token buckets refilled continuously: ``rpm`` requests and ``tpm`` tokens, each
bucket full after a minute of rest. A request needs one request in the bucket and a token
level above zero; its tokens are spent when its answer is done (they are not known before),
so a request may take the token level below zero, and the key then waits until it refills.

Concurrency is counted in named pools (a key's, an agent's, everyone's): a request runs when
its pool has a free slot, else it waits in a bounded FIFO queue for a limited time.

A request enters in one step (``Limiter.enter``): a request from each of its buckets, all or
none, then a slot in each of its pools in order; it leaves in one (``Limiter.leave``): its
slots given back and its tokens spent. Through Redis each step is one round trip when nobody
waits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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


@dataclass(frozen=True, slots=True)
class Bucket:
    """A rate a request takes one request from (a key's, a widget visitor's, an address's)."""

    name: str
    rates: Rates


@dataclass(frozen=True, slots=True)
class Pool:
    name: str
    size: int  # slots held at once


class QueueFull(Exception):
    """The pool's queue is full: refused at once."""

    def __init__(self, pool: str) -> None:
        super().__init__(pool)
        self.pool = pool


class QueueTimeout(Exception):
    """No slot came free within the queue timeout."""

    def __init__(self, pool: str) -> None:
        super().__init__(pool)
        self.pool = pool


class Slot(Protocol):
    async def release(self) -> None:
        """Give the slot back; a second call does nothing."""


class Waiting(Protocol):
    def __call__(self, pool: str, waiting: bool) -> None:
        """Told when a request starts (and stops) waiting in ``pool``'s queue."""


def not_watched(pool: str, waiting: bool) -> None:
    pass


@dataclass(slots=True)
class Entry:
    """What entering took: the buckets' levels, and (when every bucket let it in) a slot in
    each pool with the seconds waited for it."""

    levels: list[Levels]
    slots: list[Slot] = field(default_factory=list)
    waited: list[float] = field(default_factory=list)

    @property
    def refused(self) -> int | None:
        """The first bucket that refused, if one did."""
        return next((i for i, levels in enumerate(self.levels) if not levels.allowed), None)


class Limiter(Protocol):
    async def start(self) -> None: ...

    async def enter(
        self,
        buckets: Sequence[Bucket],
        pools: Sequence[Pool],
        queueing: Queueing,
        waiting: Waiting = not_watched,
    ) -> Entry:
        """One request from every bucket if all allow it (else none, and no slot), then a
        slot in each pool in order, waiting in FIFO queues.

        Raises ``QueueFull`` or ``QueueTimeout``, holding no slot.
        """
        ...

    async def leave(self, slots: Sequence[Slot], spend: Bucket | None, tokens: int) -> None:
        """Give the slots back, and take a finished request's tokens from ``spend``."""

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


async def take(limiter: Limiter, name: str, rates: Rates) -> Levels:
    """One request from one bucket."""
    [levels] = (await limiter.enter([Bucket(name, rates)], [], NO_QUEUE)).levels
    return levels


async def acquire(limiter: Limiter, pool: str, size: int, queueing: Queueing) -> Slot:
    """One slot of one pool."""
    [slot] = (await limiter.enter([], [Pool(pool, size)], queueing)).slots
    return slot


NO_QUEUE = Queueing(0, 0.0)
