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
models:
  gpt: up/gpt
  premium: {{route: up/premium, price: {{input: 10, output: 30}}}}
"""
HELPER = "---\nmodel: gpt\ntools: [calculator]\n---\nYou compute.\n"


@pytest.fixture(scope="module")
def site(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cost")
    (root / "agents").mkdir()
    (root / "agents" / "helper.md").write_text(HELPER)
    (root / "headend.yaml").write_text(CONFIG.format(url=upstream.url("cost")))
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
