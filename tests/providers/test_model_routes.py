"""The route table: aliases, fallback lists, wildcards and their errors."""

from __future__ import annotations

import pytest

from headend.errors import ConfigError
from headend.providers.model_routes import RouteTable, Target, UnknownRoute

PROVIDERS = {"openai", "ollama", "local"}


def test_aliases_lists_and_wildcards() -> None:
    table = RouteTable(
        {
            "gpt": "openai/gpt-4o-mini",
            "fast": ["ollama/qwen3", "openai/gpt-4o-mini"],
            "ollama/*": "ollama",
            "small": "local",
        },
        PROVIDERS,
    )
    assert table.for_client("gpt") == (Target("openai", "gpt-4o-mini"),)
    assert table.for_client("fast") == (Target("ollama", "qwen3"), Target("openai", "gpt-4o-mini"))
    assert table.for_client("ollama/llama3.2:1b") == (Target("ollama", "llama3.2:1b"),)
    assert table.for_client("small") == (Target("local"),)
    assert table.for_client("ollama/") is None
    assert table.for_client("openai/gpt-4o") is None  # clients only reach configured names
    assert table.names() == ["fast", "gpt", "small"]


def test_agent_routes_also_take_provider_routes() -> None:
    table = RouteTable({"gpt": "openai/gpt-4o-mini"}, PROVIDERS)
    assert table.resolve("gpt") == (Target("openai", "gpt-4o-mini"),)
    assert table.resolve("openai/o3") == (Target("openai", "o3"),)
    assert table.resolve("local") == (Target("local"),)
    with pytest.raises(UnknownRoute):
        table.resolve("mistral/large")


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        ({"x": "nowhere/m"}, "models.x: 'nowhere/m': no provider named 'nowhere'"),
        ({"x": []}, "models.x: a fallback list needs at least one route"),
        ({"y/*": "nowhere"}, "models.y/*: a wildcard maps to one provider name"),
    ],
)
def test_errors_name_the_key(models: dict[str, str | list[str]], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RouteTable(models, PROVIDERS, source="conf.yaml")
    assert f"conf.yaml: {expected}" in str(caught.value)
