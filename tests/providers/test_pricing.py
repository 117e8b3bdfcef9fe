"""Prices: per million tokens on a provider or a model route, and a request's spend added up
from each call's usage at the price of the target that answered it."""

from __future__ import annotations

import pytest

from headend.config import RouteSection
from headend.errors import ConfigError, UpstreamFailure
from headend.pricing import FREE, Price, Spend
from headend.providers.base import ChatCall
from headend.providers.model_routes import RouteTable, Target
from headend.providers.router import Router
from tests.fakes import ScriptedProvider

CHEAP = Price(input=1, output=2)
DEAR = Price(input=10, output=30)


def test_a_price_is_per_million_tokens() -> None:
    assert CHEAP.cost(1_000_000, 0) == 1
    assert DEAR.cost(1000, 2000) == pytest.approx(0.07)
    assert FREE.cost(10**9, 10**9) == 0
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        Price(input=-1, output=0)


def test_a_route_may_carry_a_price_its_targets_take() -> None:
    table = RouteTable(
        {
            "plain": "a/m",
            "dear": RouteSection(route=["a/m", "b/m"], price=DEAR),
        },
        {"a", "b"},
    )
    assert [t.price for t in table.for_client("dear") or ()] == [DEAR, DEAR]
    assert table.for_client("plain") == (Target("a", "m"),)
    with pytest.raises(ConfigError, match="a wildcard takes its provider's price"):
        RouteTable({"a/*": RouteSection(route="a", price=DEAR)}, {"a"})


def test_a_target_costs_its_routes_price_else_its_providers_else_nothing() -> None:
    providers = {name: ScriptedProvider(name=name) for name in ("a", "b")}
    router = Router(providers, prices={"a": CHEAP})
    assert router.price(Target("a", "m")) == CHEAP
    assert router.price(Target("a", "m", DEAR)) == DEAR
    assert router.price(Target("b", "m")) == FREE  # unpriced: the embedded model's default


async def test_the_spend_adds_each_call_at_the_price_of_the_target_that_answered() -> None:
    failing = ScriptedProvider(name="a", fail_before=UpstreamFailure("down", retryable=True))
    answering = ScriptedProvider(name="b", texts=["one", "two"])
    providers = {"a": failing, "b": answering}
    router = Router(providers, prices={"a": DEAR, "b": CHEAP})
    spend = Spend()
    targets = (Target("a", "m"), Target("b", "m"))
    call = ChatCall(body={"messages": []}, spend=spend)
    await router.complete(targets, call)
    assert spend.total == pytest.approx(CHEAP.cost(3, 2))  # b answered: its price
    async for _ in router.stream(targets[1:], ChatCall(body={"messages": []}, spend=spend)):
        pass
    assert spend.total == pytest.approx(2 * CHEAP.cost(3, 2))
    assert spend.reported
