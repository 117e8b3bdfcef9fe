"""A background run's journal: the tool loop's steps, committed to the store with the
events written so far, so that an instance taking the run up goes on from the last one.

Each step is written in the transaction that writes the run's unwritten events and its
object (``BackgroundRuns._write``), so what followers have seen and what the journal holds
agree at every step; a write the store refuses is tried again until it lands or the run's
claim has passed to another instance (``LeaseLost``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from headend.agents.journal import RecordedRound
from headend.store.base import RunStep
from headend.types import Json

Commit = Callable[[RunStep], Awaitable[None]]


def recorded_rounds(steps: list[RunStep]) -> list[RecordedRound]:
    """The loop's rounds as committed: each reply, with the results that followed it."""
    rounds: list[RecordedRound] = []
    for step in steps:
        if step.kind == "reply":
            rounds.append(RecordedRound(step.data["message"], step.data["usage"]))
        elif step.kind == "tool" and rounds:
            rounds[-1].results[step.data["call_id"]] = step.data["content"]
    return rounds


class RunJournal:
    def __init__(
        self, steps: list[RunStep], attempt: int, commit: Commit, position: Callable[[], int]
    ) -> None:
        self.rounds = recorded_rounds(steps)
        self.attempt = attempt
        self._next = len(steps)
        self._commit = commit
        self._position = position  # the run's last event so far, written with the step

    async def replied(self, message: Json, usage: Json) -> None:
        await self._add("reply", {"message": message, "usage": usage})

    async def tool_done(self, call_id: str, result: str) -> None:
        await self._add("tool", {"call_id": call_id, "content": result})

    async def _add(self, kind: str, data: Json) -> None:
        number, self._next = self._next, self._next + 1
        data = {**data, "last_event": self._position()}
        await self._commit(RunStep(number, kind, data, self.attempt, time.time()))


def last_committed_event(steps: list[RunStep]) -> int:
    """The sequence number of the last event written with the run's last step (-1: none)."""
    return int(steps[-1].data.get("last_event", -1)) if steps else -1


def cut_short(since: list[Json]) -> bool:
    """Whether the run wrote words after its last committed step (``since``: the events
    stored after it): a model call was cut short mid-answer."""
    return any(event.get("type") == "response.output_text.delta" for event in since)
