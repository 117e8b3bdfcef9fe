"""What model calls cost: a price per million tokens, on a provider or a model route, and a
request's spend added up from each call's usage at the price of the target that answered.

Prompt tokens read from the provider's cache (OpenAI's ``prompt_tokens_details.cached_tokens``,
Anthropic's cache reads) cost ``cached_input`` and those written to it (Anthropic's cache
creation, ``prompt_tokens_details.cache_write_tokens`` here) cost ``cache_write``, each the
``input`` price when not given; reasoning tokens are completion tokens, at ``output``.
Prices are in whatever currency the operator writes them in; unpriced calls (the embedded
model's, by default) cost 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PER = 1_000_000  # prices are per million tokens


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    input: float = Field(ge=0)  # per million prompt tokens
    output: float = Field(ge=0)  # per million completion tokens
    cached_input: float | None = Field(None, ge=0)  # per million read from cache (: input)
    cache_write: float | None = Field(None, ge=0)  # per million written to cache (: input)

    def cost(
        self, prompt_tokens: int, completion_tokens: int, cached: int = 0, written: int = 0
    ) -> float:
        """Of a call's usage; ``cached`` and ``written`` are part of ``prompt_tokens``."""
        cached_price = self.input if self.cached_input is None else self.cached_input
        write_price = self.input if self.cache_write is None else self.cache_write
        plain = max(prompt_tokens - cached - written, 0)
        return (
            plain * self.input
            + cached * cached_price
            + written * write_price
            + completion_tokens * self.output
        ) / PER

    def cost_of(self, usage: Any) -> float:
        """Of an OpenAI ``usage`` object."""
        cached, written = cache_tokens(usage)
        return self.cost(*tokens(usage), cached, written)


FREE = Price(input=0, output=0)


def tokens(usage: Any) -> tuple[int, int]:
    """(prompt, completion) tokens of an OpenAI ``usage`` object, 0 where absent."""
    if not isinstance(usage, dict):
        return 0, 0
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def cache_tokens(usage: Any) -> tuple[int, int]:
    """(read from cache, written to cache) of a usage's ``prompt_tokens_details``."""
    details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
    if not isinstance(details, dict):
        return 0, 0
    return _count(details.get("cached_tokens")), _count(details.get("cache_write_tokens"))


def reasoning_tokens(usage: Any) -> int:
    details = usage.get("completion_tokens_details") if isinstance(usage, dict) else None
    return _count(details.get("reasoning_tokens")) if isinstance(details, dict) else 0


@dataclass(slots=True)
class Spend:
    """One request's cost so far: every model call it made (a tool loop makes several)."""

    total: float = 0.0
    reported: bool = False  # a call reported its usage (else the cost is estimated)

    def add(self, price: Price, usage: Any) -> None:
        if isinstance(usage, dict):
            self.total += price.cost_of(usage)
            self.reported = True
