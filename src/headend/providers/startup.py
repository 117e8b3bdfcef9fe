"""Starting providers in the background, so that the server answers (and says it is not
ready yet) while an embedded model loads, instead of staying silent until it has.

Calls wait for their provider: a request that arrives while the model loads is answered
when it is loaded (or 503 after the provider's first-token timeout). A provider that fails
to start is logged and skipped like a failing upstream, so a route's other targets serve.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Literal

from headend.errors import ServiceUnavailable, UpstreamFailure
from headend.providers.base import Provider, Resources

log = logging.getLogger(__name__)

State = Literal["starting", "ready", "failed"]


class ProviderStartup:
    def __init__(self, providers: Mapping[str, Provider]) -> None:
        self.providers = providers
        self.state: dict[str, State] = dict.fromkeys(providers, "starting")
        self.started: list[Provider] = []
        self._done = {name: asyncio.Event() for name in providers}

    async def run(self, resources: Resources) -> None:
        """Start every provider at once; each is usable as soon as it is up."""
        await asyncio.gather(*(self._start(name, resources) for name in self.providers))

    async def _start(self, name: str, resources: Resources) -> None:
        provider = self.providers[name]
        try:
            await provider.start(resources)
        except Exception:  # reported: logged, readiness says so, calls move to other targets
            log.exception("provider %s failed to start", name)
            self.state[name] = "failed"
        else:
            self.started.append(provider)
            self.state[name] = "ready"
            log.info("provider %s is ready", name)
        finally:
            self._done[name].set()

    async def wait(self, name: str, patience: float) -> None:
        """Return once ``name`` is up; raises while it is still starting after ``patience``
        seconds (503), or when it failed to start (an upstream failure: the next target)."""
        done = self._done[name]
        if not done.is_set():
            try:
                async with asyncio.timeout(patience):
                    await done.wait()
            except TimeoutError:
                error = ServiceUnavailable(
                    f"provider '{name}' is still starting (loading its model); try again shortly"
                )
                error.headers = {"retry-after": "5"}
                raise error from None
        if self.state[name] == "failed":
            raise UpstreamFailure(f"provider '{name}' failed to start", retryable=False)

    def not_ready(self) -> list[str]:
        return [
            f"provider '{name}' {state}" for name, state in self.state.items() if state != "ready"
        ]

    async def close(self) -> None:
        """Release what started, last started first."""
        for provider in reversed(self.started):
            try:
                await provider.close()
            except Exception:  # reported; the others must still be closed
                log.exception("closing provider %s failed", provider.name)
