"""What model calls cost: a price per million tokens, on a provider or a model route, and a
request's spend added up from each call's usage at the price of the target that answered.

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

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / PER


FREE = Price(input=0, output=0)


def tokens(usage: Any) -> tuple[int, int]:
    """(prompt, completion) tokens of an OpenAI ``usage`` object, 0 where absent."""
    if not isinstance(usage, dict):
        return 0, 0
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


@dataclass(slots=True)
class Spend:
    """One request's cost so far: every model call it made (a tool loop makes several)."""

    total: float = 0.0
    reported: bool = False  # a call reported its usage (else the cost is estimated)

    def add(self, price: Price, usage: Any) -> None:
        if isinstance(usage, dict):
            self.total += price.cost(*tokens(usage))
            self.reported = True
