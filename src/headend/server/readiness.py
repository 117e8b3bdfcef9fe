"""Whether this process should get traffic: what ``GET /health/ready`` answers.

Not ready while a provider is still starting (an embedded model loading) or failed to,
while the store or Redis does not answer a ping within ``PROBE_TIMEOUT``, and from the
moment a drain begins (SIGTERM). The reasons name the part, never a URL or a credential.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from headend.providers.startup import ProviderStartup

PROBE_TIMEOUT = 2.0

Ping = Callable[[], Awaitable[None]]


class Readiness:
    def __init__(self) -> None:
        self.draining = False
        self.drain_started: float | None = None  # time.monotonic() at the drain's start
        self.startup: ProviderStartup | None = None
        self.pings: dict[str, Ping] = {}
        # What works, but not as configured: an agent file that no longer validates, …
        self.notes: Callable[[], list[str]] = list

    def drain(self) -> None:
        self.draining = True
        self.drain_started = time.monotonic()

    def drain_left(self, drain_seconds: float) -> float:
        """Seconds left of a drain of ``drain_seconds`` (all of them before it starts)."""
        if self.drain_started is None:
            return drain_seconds
        return max(0.0, drain_seconds - (time.monotonic() - self.drain_started))

    async def reasons(self) -> list[str]:
        """Why this process is not ready; empty when it is."""
        found = ["draining: shutting down"] if self.draining else []
        if self.startup is None:
            found.append("starting")
        else:
            found.extend(self.startup.not_ready())
        checked = await asyncio.gather(
            *(self._check(name, ping) for name, ping in self.pings.items())
        )
        found.extend(problem for problem in checked if problem)
        return found

    @staticmethod
    async def _check(name: str, ping: Ping) -> str:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await ping()
        except TimeoutError:
            return f"{name}: no answer within {PROBE_TIMEOUT:g} s"
        except Exception as exc:  # any failure means not ready; its text may hold a URL
            return f"{name}: unreachable ({type(exc).__name__})"
        return ""
