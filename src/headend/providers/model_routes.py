"""Routes: how a name reaches a provider and, optionally, the provider's own model.

- ``local`` names the provider ``local`` with its default model;
- ``openai/gpt-4o-mini`` names the provider ``openai`` and its model ``gpt-4o-mini``;
- a name under ``models:`` in headend.yaml is an alias for one route or a fallback list;
- ``"ollama/*": ollama`` under ``models:`` passes ``ollama/<anything>`` to the provider
  ``ollama`` as model ``<anything>``;
- ``fast: {route: openai/gpt-4o-mini, price: {input: 0.15, output: 0.6}}`` is an alias
  with a price of its own (its targets carry it; see ``headend.pricing``).

Clients may send only agent ids and names under ``models:`` (wildcards included). Agent
files may also use provider routes directly.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from headend.errors import ConfigError
from headend.pricing import Price

WILDCARD = "/*"


@dataclass(frozen=True, slots=True)
class Target:
    provider: str
    model: str | None = None
    price: Price | None = field(default=None, compare=False)  # the alias's; None: the provider's

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}" if self.model else self.provider


class UnknownRoute(LookupError):
    """The route names no configured provider or model."""


class RouteTable:
    def __init__(
        self,
        models: Mapping[str, Any],  # headend.yaml's models: (str, list or RouteSection)
        providers: Collection[str],
        *,
        source: str = "headend.yaml",
    ) -> None:
        self.providers = frozenset(providers)
        self._aliases: dict[str, tuple[Target, ...]] = {}
        self._wildcards: dict[str, str] = {}
        problems: list[str] = []
        for name, value in models.items():
            where = f"{source}: models.{name}"
            routes, price = _routes_and_price(value)
            if name.endswith(WILDCARD):
                if not isinstance(routes, str) or routes not in self.providers:
                    problems.append(f"{where}: a wildcard maps to one provider name")
                elif price is not None:
                    problems.append(f"{where}: a wildcard takes its provider's price")
                else:
                    self._wildcards[name[: -len(WILDCARD)] + "/"] = routes
                continue
            listed = [routes] if isinstance(routes, str) else routes
            if not listed:
                problems.append(f"{where}: a fallback list needs at least one route")
                continue
            targets = []
            for route in listed:
                try:
                    found = self._provider_route(route)
                    targets.append(Target(found.provider, found.model, price))
                except UnknownRoute as exc:
                    problems.append(f"{where}: {route!r}: {exc}")
            self._aliases[name] = tuple(targets)
        if problems:
            raise ConfigError(problems)

    def adopt(self, other: RouteTable) -> None:
        """Take ``other``'s names (``models:`` read again), in place: whoever holds this
        table routes by them from now on. The providers are the same: they start once."""
        self._aliases, self._wildcards = other._aliases, other._wildcards

    def _provider_route(self, route: str) -> Target:
        provider, _, model = route.partition("/")
        if provider not in self.providers:
            known = ", ".join(sorted(self.providers)) or "none"
            raise UnknownRoute(f"no provider named {provider!r} (configured: {known})")
        return Target(provider=provider, model=model or None)

    def resolve(self, route: str) -> tuple[Target, ...]:
        """An agent file's route: an alias, a wildcard name, or a provider route."""
        found = self.for_client(route)
        if found is not None:
            return found
        return (self._provider_route(route),)

    def for_client(self, name: str) -> tuple[Target, ...] | None:
        """The targets of a ``model`` a client sent, or None when it names no model route."""
        aliased = self._aliases.get(name)
        if aliased is not None:
            return aliased
        prefix, slash, rest = name.partition("/")
        if slash and rest:
            provider = self._wildcards.get(prefix + "/")
            if provider is not None:
                return (Target(provider=provider, model=rest),)
        return None

    def names(self) -> list[str]:
        """The names /v1/models lists: every alias (wildcards cannot be enumerated)."""
        return sorted(self._aliases)


def _routes_and_price(value: Any) -> tuple[Any, Price | None]:
    """A ``models:`` entry's routes and its price (a plain route or list has none)."""
    routes = getattr(value, "route", value)
    return routes, getattr(value, "price", None)
