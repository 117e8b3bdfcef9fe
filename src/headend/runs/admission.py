"""Letting a request in: its key's budget, its rates (and a widget visitor's), then a slot in each
concurrency pool it belongs to (its key's, its agent's or model's, everyone's), taken in that
order in one step of the limiter; and, when it ends, its slots given back and its tokens
counted in another.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from headend.access.principal import Principal
from headend.config import LimitSettings
from headend.errors import RateLimited
from headend.limits.base import (
    Bucket,
    Limiter,
    Pool,
    QueueFull,
    Queueing,
    QueueTimeout,
    Slot,
)
from headend.limits.refusals import rate_headers, retry_after, retry_headers, visitor_refusal
from headend.observability.metrics import Metrics
from headend.pricing import FREE, Price, Spend
from headend.runs.budgets import BudgetBook
from headend.runs.record import RunRecord
from headend.runs.usage import UsageMeter

log = logging.getLogger(__name__)

GLOBAL_POOL = "global"
# A background run waits for its slots as long as it takes (its key may have only so many):
# queued, behind the requests and runs that came first.
BACKLOG = Queueing(max_waiting=1_000_000, timeout=86_400.0)
QUEUE_FULL_RETRY = 1.0  # seconds a client refused by a full queue is told to wait


@dataclass(slots=True)
class Ticket:
    """One admitted request: what it holds and what it used."""

    principal: Principal
    model: str
    context: RunRecord | None = None  # told the tokens charged, for the access log
    headers: dict[str, str] = field(default_factory=dict)
    slots: list[Slot] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)  # as the model reported it
    spend: Spend = field(default_factory=Spend)  # what its model calls cost
    price: Price = FREE  # its first target's, for a cost estimated without usage
    done: bool = False


def pool_labels(pool: str) -> tuple[str, str]:
    """A pool's kind and name as metric labels; a key's pool is not named (key ids are
    many, and not the metrics' business)."""
    kind, _, name = pool.partition(":")
    if kind == "key":
        return kind, ""
    return kind, name or kind


class Admission:
    def __init__(
        self,
        limiter: Limiter,
        limits: LimitSettings,
        meter: UsageMeter,
        metrics: Metrics | None = None,
        budgets: BudgetBook | None = None,
    ) -> None:
        self.limiter = limiter
        self.limits = limits
        self.meter = meter
        self.budgets = budgets
        self.metrics = metrics or Metrics()
        self.queueing = Queueing(limits.max_queue, limits.queue_timeout)

    def buckets(self, principal: Principal) -> list[tuple[Bucket, str]]:
        """The rates a request takes one request from, each with who it limits: a widget
        visitor's and their address's, then the key's."""
        found = []
        key = principal.key_id
        if principal.visitor is not None and principal.visitor_rates:
            rates = principal.visitor_rates
            found.append((Bucket(f"visitor:{key}:{principal.visitor}", rates), "visitor"))
            found.append((Bucket(f"address:{key}:{principal.address}", rates), "address"))
        if principal.rates and key is not None:
            found.append((Bucket(key, principal.rates), "key"))
        return found

    def pools(self, principal: Principal, model: str, agent_limit: int | None) -> list[Pool]:
        """The pools a request takes a slot in: the key's, then its agent's (or model
        route's), then everyone's."""
        found = []
        if principal.max_concurrency and principal.key_id is not None:
            found.append(Pool(f"key:{principal.key_id}", principal.max_concurrency))
        if agent_limit is not None:
            found.append(Pool(f"agent:{model}", agent_limit))
        elif self.limits.model_concurrency is not None:
            found.append(Pool(f"model:{model}", self.limits.model_concurrency))
        if self.limits.concurrency is not None:
            found.append(Pool(GLOBAL_POOL, self.limits.concurrency))
        return found

    async def admit(
        self,
        principal: Principal,
        model: str,
        agent_limit: int | None,
        context: RunRecord | None = None,
        *,
        slots: bool = True,
    ) -> Ticket:
        """Check the key's budget, take a request from every rate and (unless ``slots`` is
        false: a background run takes them when it runs, ``take_slots``) a slot in every
        pool, or refuse with 429 and when to come back (holding nothing)."""
        ticket = Ticket(principal, model, context)
        if self.budgets is not None:
            ticket.headers = await self.budgets.check(principal.key_id, principal.budget)
        buckets = self.buckets(principal)
        pools = self.pools(principal, model, agent_limit) if slots else []
        if not buckets and not pools:
            return ticket
        try:
            entry = await self.limiter.enter(
                [bucket for bucket, _ in buckets], pools, self.queueing, self._watch
            )
        except (QueueFull, QueueTimeout) as exc:
            refusal = self._queue_refusal(exc, pools)
            refusal.headers = ticket.headers | refusal.headers
            raise refusal from None
        ticket.slots = entry.slots
        for (bucket, who), levels in zip(buckets, entry.levels, strict=True):
            if who == "key":
                ticket.headers |= rate_headers(bucket.rates, levels)
        refused = entry.refused
        if refused is not None:
            bucket, who = buckets[refused]
            levels = entry.levels[refused]
            wait = retry_after(bucket.rates, levels)
            if who != "key":
                raise visitor_refusal(bucket.rates, wait, who)
            rates = bucket.rates
            kind = "requests" if rates.rpm and levels.requests < 1 else "tokens"
            limit = rates.rpm if kind == "requests" else rates.tpm
            raise RateLimited(
                f"Rate limit reached for this key on {kind} per minute: limit {limit}. "
                f"Try again in {wait:.1f}s.",
                kind=kind,
                headers=ticket.headers | retry_headers(wait),
            )
        for pool, waited in zip(pools, entry.waited, strict=True):
            self.metrics.queue_wait.labels(*pool_labels(pool.name)).observe(waited)
        return ticket

    async def take_slots(self, ticket: Ticket, agent_limit: int | None) -> None:
        """A background run's slots, waited for as long as it takes (``BACKLOG``)."""
        pools = self.pools(ticket.principal, ticket.model, agent_limit)
        if not pools:
            return
        entry = await self.limiter.enter([], pools, BACKLOG, self._watch)
        ticket.slots = entry.slots
        for pool, waited in zip(pools, entry.waited, strict=True):
            self.metrics.queue_wait.labels(*pool_labels(pool.name)).observe(waited)

    def _watch(self, pool: str, waiting: bool) -> None:
        gauge = self.metrics.queued.labels(*pool_labels(pool))
        if waiting:
            gauge.inc()
        else:
            gauge.dec()

    def _queue_refusal(self, exc: QueueFull | QueueTimeout, pools: list[Pool]) -> RateLimited:
        size = next(pool.size for pool in pools if pool.name == exc.pool)
        why = (
            f"Waited {self.queueing.timeout:g}s for a free slot of '{exc.pool}'"
            if isinstance(exc, QueueTimeout)
            else f"Too many requests wait for '{exc.pool}'"
        )
        return RateLimited(
            f"{why} ({size} run at once). Try again shortly.",
            kind="concurrency",
            headers=retry_headers(QUEUE_FULL_RETRY),
        )

    async def leave(self, ticket: Ticket, estimate_prompt: Callable[[], int]) -> None:
        """Give every slot back and count the tokens; once, whatever happened."""
        if ticket.done:
            return
        ticket.done = True
        usage: dict[str, Any] = ticket.usage
        if not usage:  # cut short before the model reported: charge what was sent
            usage = {"prompt_tokens": estimate_prompt(), "completion_tokens": 0}
        spent = ticket.spend
        cost = spent.total if spent.reported else ticket.price.cost_of(usage)
        self.meter.add(ticket.principal.key_id, ticket.model, usage, cost)
        if cost and ticket.principal.budget is not None:
            self.meter.hurry()  # other instances count it within a second or two
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        self.metrics.count_tokens(ticket.model, prompt, completion)
        if ticket.context is not None:
            ticket.context.tokens = (prompt, completion)
        rates, key = ticket.principal.rates, ticket.principal.key_id
        spend = Bucket(key, rates) if rates.tpm and key is not None else None
        if not ticket.slots and spend is None:
            return
        try:
            await self.limiter.leave(ticket.slots, spend, prompt + completion)
        except Exception:  # a lease left behind ends by itself
            log.exception("giving slots back or counting tokens against a key's rate failed")
