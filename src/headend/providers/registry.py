"""Provider types by name: the one path through which every provider is registered."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from headend.config import Settings, format_validation_error
from headend.errors import ConfigError
from headend.providers.base import Provider


@dataclass(frozen=True, slots=True)
class ProviderType:
    """How to validate a provider's section and build the provider from it."""

    config_model: type[BaseModel]
    build: Callable[[str, Any, Settings], Provider]


class ProviderTypes:
    def __init__(self) -> None:
        self._types: dict[str, ProviderType] = {}

    def register(self, type_name: str, provider_type: ProviderType) -> None:
        if type_name in self._types:
            raise ValueError(f"provider type {type_name!r} is already registered")
        self._types[type_name] = provider_type

    def add(
        self,
        type_name: str,
        config_model: type[BaseModel],
        build: Callable[[str, Any, Settings], Provider],
    ) -> None:
        """What a provider module's ``register`` is handed (``providers.base.Register``)."""
        self.register(type_name, ProviderType(config_model, build))

    def names(self) -> list[str]:
        return sorted(self._types)

    def validate(self, settings: Settings) -> dict[str, tuple[ProviderType, BaseModel]]:
        """Check every provider section; all problems at once, each naming file and key."""
        problems: list[str] = []
        checked: dict[str, tuple[ProviderType, BaseModel]] = {}
        for name, section in settings.providers.items():
            if "/" in name:
                problems.append(f"{settings.source}: providers.{name}: a name may not hold '/'")
                continue
            provider_type = self._types.get(section.type)
            if provider_type is None:
                known = ", ".join(self.names())
                problems.append(
                    f"{settings.source}: providers.{name}.type: unknown provider type "
                    f"{section.type!r} (known: {known})"
                )
                continue
            try:
                config = provider_type.config_model.model_validate(section.options())
            except ValidationError as exc:
                problems += format_validation_error(
                    settings.source, exc, prefix=f"providers.{name}."
                )
                continue
            checked[name] = (provider_type, config)
        if problems:
            raise ConfigError(problems)
        return checked

    def build(self, settings: Settings) -> dict[str, Provider]:
        return {
            name: provider_type.build(name, config, settings)
            for name, (provider_type, config) in self.validate(settings).items()
        }


def builtin_provider_types() -> ProviderTypes:
    """The provider types headend ships, registered as a plugin would register its own."""
    from headend.providers import anthropic, llama_cpp, openai_compat

    types = ProviderTypes()
    for module in (llama_cpp, openai_compat, anthropic):
        module.register(types.add)
    return types
