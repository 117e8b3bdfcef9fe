"""Cost, end to end: prices per million tokens on a provider and on a model route; each
request's cost is its model calls' (a tool loop's every call, at the price of the target
that answered), kept with the usage and shown by /admin/usage and ``headend usage``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, HI, issue, serve
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

CONFIG = """
providers:
  up: {{type: openai, base_url: "{url}/v1", retry: {{attempts: 1}}, price: {{input: 1, output: 2}}}}
  claude:
    type: anthropic
    base_url: "{anthropic}"
    retry: {{attempts: 1}}
    price: {{input: 3, output: 15, cached_input: 0.3, cache_write: 3.75}}
models:
  gpt: up/gpt
  premium: {{route: up/premium, price: {{input: 10, output: 30}}}}
  cheap-cache: {{route: up/cc, price: {{input: 2, output: 8, cached_input: 0.5}}}}
"""
HELPER = "---\nmodel: gpt\ntools: [calculator]\n---\nYou compute.\n"
CACHER = "---\nmodel: claude/sonnet\ntools: [calculator]\n---\nYou compute.\n"
CALC = [{"id": "c1", "name": "calculator", "arguments": '{"expression": "1+1"}'}]


@pytest.fixture(scope="module")
def site(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cost")
    (root / "agents").mkdir()
    (root / "agents" / "helper.md").write_text(HELPER)
    config = CONFIG.format(url=upstream.url("cost"), anthropic=upstream.url("costc"))
    (root / "headend.yaml").write_text(config)
    return root


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[RunningServer]:
    running = serve(site)
    yield running
    stop_server(running)


def test_each_request_costs_its_calls_at_the_price_of_their_route_or_provider(
    site: Path, server: RunningServer, fake: FakeUpstream
) -> None:
    key = issue(server, name="spender", scopes=["chat"])
    headers = {"Authorization": f"Bearer {key['secret']}"}

    def ask(model: str, **extra: object) -> httpx.Response:
        return httpx.post(
            server.api + "/chat/completions",
            json={"model": model, "messages": HI, **extra},
            headers=headers,
            timeout=30,
        )

    fake.script(
        "cost",
        Reply(usage=(1000, 2000)),  # gpt: the provider's price
        Reply(usage=(1000, 2000)),  # premium, streamed: the route's own price
        Reply(  # the helper's tool loop: two calls at the provider's price
            text="",
            tool_calls=[{"id": "c1", "name": "calculator", "arguments": '{"expression": "1+1"}'}],
            usage=(1000, 2000),
        ),
        Reply(text="2", usage=(3000, 500)),
    )
    assert ask("gpt").status_code == 200
    streamed = ask("premium", stream=True, stream_options={"include_usage": True})
    assert streamed.status_code == 200
    assert ask("helper").status_code == 200

    rows = httpx.get(
        server.base_url + "/admin/usage", headers={"Authorization": f"Bearer {ADMIN}"}
    ).json()["data"]
    costs = {row["model"]: row["cost"] for row in rows if row["key_id"] == key["id"]}
    assert costs == {
        "gpt": pytest.approx((1000 * 1 + 2000 * 2) / 1e6),
        "premium": pytest.approx((1000 * 10 + 2000 * 30) / 1e6),
        "helper": pytest.approx((4000 * 1 + 2500 * 2) / 1e6),
    }

    stop_server(server)  # what the CLI reads is what the server wrote when it stopped
    printed = subprocess.run(
        [sys.executable, "-m", "headend", "usage", "--config", str(site / "headend.yaml")],
        capture_output=True,
        text=True,
        cwd=site,
        timeout=60,
    )
    assert printed.returncode == 0, printed.stderr
    header, *lines = printed.stdout.splitlines()
    assert header.split()[-1] == "COST"
    by_model = {line.split()[3]: line.split()[-1] for line in lines if str(key["id"]) in line}
    assert by_model == {"gpt": "0.005", "premium": "0.07", "helper": "0.009"}
    assert lines[-1].split()[-1] == "0.084"


@pytest.fixture
def cache_server(upstream: FakeUpstream, tmp_path: Path) -> Iterator[RunningServer]:
    """A site of its own: the first test reads every key's total."""
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "cacher.md").write_text(CACHER)
    config = CONFIG.format(url=upstream.url("cost"), anthropic=upstream.url("costc"))
    (tmp_path / "headend.yaml").write_text(config)
    running = serve(tmp_path)
    yield running
    stop_server(running)


def test_cached_cache_written_and_reasoning_tokens_are_kept_and_priced(
    cache_server: RunningServer, fake: FakeUpstream
) -> None:
    server = cache_server
    key = issue(server, name="cacher", scopes=["chat"])
    headers = {"Authorization": f"Bearer {key['secret']}"}

    def ask(path: str, body: dict[str, object]) -> dict[str, object]:
        answer = httpx.post(server.api + path, json=body, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        found: dict[str, object] = answer.json()
        return found

    # An agent's tool loop on Anthropic: both calls read from the cache, the first writes to it.
    fake.script(
        "costc",
        Reply(text="", tool_calls=CALC, usage=(10_000, 200), cache=(6_000, 3_000)),
        Reply(text="2", usage=(10_500, 100), cache=(9_000, 0)),
    )
    chat = ask("/chat/completions", {"model": "cacher", "messages": HI})["usage"]
    assert chat == {
        "prompt_tokens": 20_500,
        "completion_tokens": 300,
        "total_tokens": 20_800,
        "prompt_tokens_details": {"cached_tokens": 15_000, "cache_write_tokens": 3_000},
    }
    # The same told the Anthropic way: input tokens without those of the cache.
    fake.script(
        "costc",
        Reply(text="", tool_calls=CALC, usage=(10_000, 200), cache=(6_000, 3_000)),
        Reply(text="2", usage=(10_500, 100), cache=(9_000, 0)),
    )
    message = ask("/messages", {"model": "cacher", "max_tokens": 50, "messages": HI})
    assert message["usage"] == {
        "input_tokens": 2_500,
        "output_tokens": 300,
        "cache_creation_input_tokens": 3_000,
        "cache_read_input_tokens": 15_000,
    }
    # A route to OpenAI with reasoning tokens, through the Responses API.
    fake.script("cost", Reply(usage=(4_000, 1_000), cache=(3_000, 0), reasoning=600))
    response = ask("/responses", {"model": "cheap-cache", "input": "Hi"})["usage"]
    assert response == {
        "input_tokens": 4_000,
        "input_tokens_details": {"cached_tokens": 3_000, "cache_write_tokens": 0},
        "output_tokens": 1_000,
        "output_tokens_details": {"reasoning_tokens": 600},
        "total_tokens": 5_000,
    }

    rows = httpx.get(
        server.base_url + "/admin/usage", headers={"Authorization": f"Bearer {ADMIN}"}
    ).json()["data"]
    costs = {row["model"]: row["cost"] for row in rows if row["key_id"] == key["id"]}
    one_loop = (
        (1_000 * 3 + 6_000 * 0.3 + 3_000 * 3.75 + 200 * 15)  # first call
        + (1_500 * 3 + 9_000 * 0.3 + 100 * 15)  # second call
    ) / 1e6
    assert costs == {
        "cacher": pytest.approx(2 * one_loop),
        "cheap-cache": pytest.approx((1_000 * 2 + 3_000 * 0.5 + 1_000 * 8) / 1e6),
    }
