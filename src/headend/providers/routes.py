"""Routes: how an agent's ``model`` names a provider and, optionally, the provider's model.

``local`` names the provider ``local`` with its default model; ``openai/gpt-4o-mini`` names
the provider ``openai`` and its model ``gpt-4o-mini`` (the part after the first ``/``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Target:
    provider: str
    model: str | None = None


class UnknownRoute(LookupError):
    """The route names no configured provider."""


def resolve_route(route: str, providers: Collection[str]) -> Target:
    provider, _, model = route.partition("/")
    if provider not in providers:
        known = ", ".join(sorted(providers)) or "none"
        raise UnknownRoute(f"no provider named {provider!r} (configured: {known})")
    return Target(provider=provider, model=model or None)
