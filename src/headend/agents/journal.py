"""What a tool loop records as it goes, so that a run taken up after a crash goes on from
its last committed step instead of from the start.

A loop with a journal commits each model reply that called the agent's tools before any of
those tools runs, and each tool's result before the loop goes on. Taken up again, it replays
what was committed: a recorded reply is not asked of the model again (its usage is counted
from the record, once), and a recorded result is not run again. A call that was started but
has no result was cut short: it runs again only if its tool says a repeat is safe
(``Tool.repeatable``); otherwise the model is told it was interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from headend.types import Json

INTERRUPTED = (
    "Error: this call was interrupted: the server running it stopped before it returned, "
    "and it was not run again because it may have taken effect. Check its effect before "
    "repeating it."
)


@dataclass(slots=True)
class RecordedRound:
    """One round of the loop as committed: the model's reply and its tools' results."""

    message: Json  # the assistant message, with its tool calls
    usage: Json  # that model call's
    results: dict[str, str] = field(default_factory=dict)  # tool call id -> result


class Journal(Protocol):
    rounds: list[RecordedRound]  # committed before the run was taken up: replayed

    async def replied(self, message: Json, usage: Json) -> None:
        """A model reply that called the agent's tools: committed before any of them runs."""
        ...

    async def tool_done(self, call_id: str, result: str) -> None:
        """One tool call's result: committed before the loop goes on."""
        ...
