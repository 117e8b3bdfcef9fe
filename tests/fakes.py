"""A scripted in-process provider for fast tests of the server's own behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from headend.errors import APIError
from headend.providers.base import Finish, ModelCall, ModelEvent, TextDelta, Usage


@dataclass
class ScriptedProvider:
    """Yields ``texts`` (after ``delay`` seconds), then finishes or raises ``fail_after``."""

    name: str = "local"
    texts: list[str] = field(default_factory=lambda: ["Hello", " world"])
    delay: float = 0.0
    fail_before: APIError | None = None
    fail_after: APIError | None = None
    calls: list[ModelCall] = field(default_factory=list)
    closed: int = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def stream(self, call: ModelCall) -> AsyncGenerator[ModelEvent, None]:
        self.calls.append(call)
        try:
            await asyncio.sleep(self.delay)
            if self.fail_before is not None:
                raise self.fail_before
            for text in self.texts:
                yield TextDelta(text)
            if self.fail_after is not None:
                raise self.fail_after
            yield Finish("stop", Usage(prompt_tokens=3, completion_tokens=len(self.texts)))
        finally:
            self.closed += 1
