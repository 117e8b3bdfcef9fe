"""Letting a request in: its key's rates first, then a slot in each concurrency pool it
belongs to (its key's, its agent's or model's, everyone's), taken in that order; and, when it
ends, its slots given back and its tokens counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from headend.config import LimitSettings
from headend.errors import RateLimited
from headend.limits.base import Limiter, QueueFull, Queueing, QueueTimeout, Rates, Slot
from headend.observability.metrics import Metrics
from headend.server.auth import Principal
from headend.server.context import RequestContext
from headend.server.ratelimit_headers import rate_headers, retry_after, retry_headers
from headend.server.usage import UsageMeter

log = logging.getLogger(__name__)

GLOBAL_POOL = "global"
QUEUE_FULL_RETRY = 1.0  # seconds a client refused by a full queue is told to wait


@dataclass(slots=True)
class Ticket:
    """One admitted request: what it holds and what it used."""

    principal: Principal
    model: str
    context: RequestContext | None = None  # told the tokens charged, for the access log
    headers: dict[str, str] = field(default_factory=dict)
    slots: list[Slot] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)  # as the model reported it
    done: bool = False


async def take_visitor_rate(
    limiter: Limiter, bucket: str, rates: Rates, who: str = "visitor"
) -> None:
    """One request from a widget visitor's (or client address's) bucket, or 429."""
    levels = await limiter.take(bucket, rates)
    if not levels.allowed:
        wait = retry_after(rates, levels)
        raise RateLimited(
            f"Rate limit reached for this {who}: {rates.rpm} requests per minute. "
            f"Try again in {wait:.1f}s.",
            kind="requests",
            headers=retry_headers(wait),
        )


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
    ) -> None:
        self.limiter = limiter
        self.limits = limits
        self.meter = meter
        self.metrics = metrics or Metrics()
        self.queueing = Queueing(limits.max_queue, limits.queue_timeout)

    async def check_rates(
        self, principal: Principal, model: str, context: RequestContext | None = None
    ) -> Ticket:
        """Take one request from the key's rates (and a widget visitor's, and their
        address's), or refuse with 429 and when to come back."""
        ticket = Ticket(principal, model, context)
        if principal.visitor is not None and principal.visitor_rates:
            key, rates = principal.key_id, principal.visitor_rates
            await take_visitor_rate(self.limiter, f"visitor:{key}:{principal.visitor}", rates)
            await take_visitor_rate(
                self.limiter, f"address:{key}:{principal.address}", rates, "address"
            )
        rates = principal.rates
        if rates and principal.key_id is not None:
            levels = await self.limiter.take(principal.key_id, rates)
            ticket.headers = rate_headers(rates, levels)
            if not levels.allowed:
                kind = "requests" if rates.rpm and levels.requests < 1 else "tokens"
                limit = rates.rpm if kind == "requests" else rates.tpm
                wait = retry_after(rates, levels)
                raise RateLimited(
                    f"Rate limit reached for this key on {kind} per minute: limit {limit}. "
                    f"Try again in {wait:.1f}s.",
                    kind=kind,
                    headers=ticket.headers | retry_headers(wait),
                )
        return ticket

    def pools(self, ticket: Ticket, agent_limit: int | None) -> list[tuple[str, int]]:
        """The pools a request takes a slot in: the key's, then its agent's (or model
        route's), then everyone's."""
        found = []
        principal = ticket.principal
        if principal.max_concurrency and principal.key_id is not None:
            found.append((f"key:{principal.key_id}", principal.max_concurrency))
        if agent_limit is not None:
            found.append((f"agent:{ticket.model}", agent_limit))
        elif self.limits.model_concurrency is not None:
            found.append((f"model:{ticket.model}", self.limits.model_concurrency))
        if self.limits.concurrency is not None:
            found.append((GLOBAL_POOL, self.limits.concurrency))
        return found

    async def enter(self, ticket: Ticket, agent_limit: int | None) -> None:
        """A slot in each pool, waiting in their queues; on failure none is kept."""
        try:
            for pool, size in self.pools(ticket, agent_limit):
                labels = pool_labels(pool)
                waiting = self.metrics.queued.labels(*labels)
                waiting.inc()
                started = time.perf_counter()
                try:
                    ticket.slots.append(await self.limiter.acquire(pool, size, self.queueing))
                    waited = time.perf_counter() - started
                    self.metrics.queue_wait.labels(*labels).observe(waited)
                except (QueueFull, QueueTimeout) as exc:
                    why = (
                        f"Waited {self.queueing.timeout:g}s for a free slot of '{pool}'"
                        if isinstance(exc, QueueTimeout)
                        else f"Too many requests wait for '{pool}'"
                    )
                    raise RateLimited(
                        f"{why} ({size} run at once). Try again shortly.",
                        kind="concurrency",
                        headers=ticket.headers | retry_headers(QUEUE_FULL_RETRY),
                    ) from None
                finally:
                    waiting.dec()
        except BaseException:
            await self.leave(ticket, lambda: 0, counted=False)
            raise

    async def leave(
        self, ticket: Ticket, estimate_prompt: Callable[[], int], *, counted: bool = True
    ) -> None:
        """Give every slot back and count the tokens; once, whatever happened."""
        if ticket.done:
            return
        ticket.done = True
        for slot in ticket.slots:
            try:
                await slot.release()
            except Exception:  # a lease left behind ends by itself
                log.exception("giving a concurrency slot back failed")
        if not counted:
            return
        usage: dict[str, Any] = ticket.usage
        if not usage:  # cut short before the model reported: charge what was sent
            usage = {"prompt_tokens": estimate_prompt(), "completion_tokens": 0}
        self.meter.add(ticket.principal.key_id, ticket.model, usage)
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        self.metrics.count_tokens(ticket.model, prompt, completion)
        if ticket.context is not None:
            ticket.context.tokens = (prompt, completion)
        rates = ticket.principal.rates
        if rates.tpm and ticket.principal.key_id is not None:
            spent = prompt + completion
            try:
                await self.limiter.spend(ticket.principal.key_id, rates, spent)
            except Exception:
                log.exception("counting tokens against a key's rate failed")
