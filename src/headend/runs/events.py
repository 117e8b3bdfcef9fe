"""What a run gives out: events, which each surface frames for its own wire.

A streamed run gives batches of ``chat.completion.chunk`` as they arrive and, for an agent
with tools, its tools' progress; a run not streamed gives one ``Completion``. Chat chunks are
the run's own language: the Responses, Messages and Completions surfaces translate from them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from headend.agents.loop import ToolProgress
from headend.types import Json


@dataclass(frozen=True, slots=True)
class Completion:
    """The ``chat.completion`` of a run that was not streamed."""

    body: Json


RunEvent = list[Json] | ToolProgress | Completion


async def completion_of(events: AsyncGenerator[RunEvent, None]) -> Json:
    """The answer of a run not streamed; its events are read to the end, so the run has
    committed its turn and released what it held when this returns."""
    answer: Json | None = None
    async for event in events:
        if isinstance(event, Completion):
            answer = event.body
    assert answer is not None, "a run not streamed ends with its Completion"
    return answer


async def chunk_batches(events: AsyncGenerator[RunEvent, None]) -> AsyncGenerator[list[Json], None]:
    """A streamed run's chunks without its tools' progress: what the surfaces other than
    Chat Completions translate."""
    try:
        async for event in events:
            if isinstance(event, list) and event:
                yield event
    finally:
        await events.aclose()


async def stream_events(
    events: AsyncGenerator[RunEvent, None],
) -> AsyncGenerator[list[Json] | ToolProgress, None]:
    """A streamed run's chunks and its tools' progress: what the Responses surface
    translates (a hosted tool's progress is an output item of its own there)."""
    try:
        async for event in events:
            if isinstance(event, ToolProgress) or (isinstance(event, list) and event):
                yield event
    finally:
        await events.aclose()
