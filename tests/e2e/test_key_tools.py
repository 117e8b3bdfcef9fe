"""Keys that limit an agent's tools: the rest are not offered to the model, a call to one
anyway is refused, and a read-only key's http_fetch may only GET."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import RunningServer
from tests.e2e.sites import ADMIN, HI, issue, site_fixture
from tests.secret_site import SecretSite
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

WORKER = (
    "---\nmodel: up/worker\ntools: [calculator, current_time, http_fetch, terminal]\n"
    "allow_hosts: [localhost]\n---\nYou work.\n"
)
served = site_fixture("t", {"worker": WORKER})


@pytest.fixture(scope="module")
def site() -> Iterator[SecretSite]:
    running = SecretSite()
    yield running
    running.stop()


def ask(server: RunningServer, key: object) -> httpx.Response:
    return httpx.post(
        server.api + "/chat/completions",
        json={"model": "worker", "messages": HI},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def offered(fake: FakeUpstream) -> set[str]:
    tools = fake.received("t")[0].body.get("tools") or []
    return {tool["function"]["name"] for tool in tools}


def call(name: str, **arguments: object) -> dict[str, str]:
    return {"id": f"call_{name}", "name": name, "arguments": json.dumps(arguments)}


@pytest.mark.parametrize(
    ("grant", "expected"),
    [
        ({}, {"calculator", "current_time", "http_fetch", "terminal"}),
        ({"read_only": True}, {"calculator", "current_time", "http_fetch"}),
        ({"tools": ["calculator", "terminal"]}, {"calculator", "terminal"}),
        ({"no_tools": True}, set()),
    ],
    ids=["all", "read-only", "list", "none"],
)
def test_only_the_keys_tools_are_offered(
    served: RunningServer, fake: FakeUpstream, grant: dict[str, object], expected: set[str]
) -> None:
    created = issue(served, name="k", scopes=["chat"], **grant)
    fake.script("t", Reply(text="ok"))
    assert ask(served, created["secret"]).status_code == 200
    assert offered(fake) == expected
    described = {"all": "all", "read_only": "read-only", "no_tools": "none"}
    shown = created["tools"]
    assert shown == (grant.get("tools") or described[next(iter(grant), "all")])


def test_a_call_to_a_tool_the_key_may_not_use_is_refused(
    served: RunningServer, fake: FakeUpstream
) -> None:
    key = issue(served, name="reader", scopes=["chat"], read_only=True)["secret"]
    fake.script(
        "t",
        Reply(text="", tool_calls=[call("terminal", command="true")]),
        Reply(text="done"),
    )
    assert ask(served, key).status_code == 200
    result = fake.received("t")[1].body["messages"][-1]
    assert result["role"] == "tool"
    assert "no tool named 'terminal'" in result["content"]


def test_read_only_http_fetch_may_get_but_not_post(
    served: RunningServer, fake: FakeUpstream, site: SecretSite
) -> None:
    key = issue(served, name="reader", scopes=["chat"], read_only=True)["secret"]
    url = f"http://localhost:{site.port}/secret"
    fake.script(
        "t",
        Reply(text="", tool_calls=[call("http_fetch", url=url, method="POST", body="x")]),
        Reply(text="", tool_calls=[call("http_fetch", url=url)]),
        Reply(text="done"),
    )
    before = len(site.hits)
    assert ask(served, key).status_code == 200
    posted = fake.received("t")[1].body["messages"][-1]["content"]
    got = fake.received("t")[2].body["messages"][-1]["content"]
    assert "only GET is allowed" in posted
    assert got.startswith("HTTP 200")
    assert len(site.hits) == before + 1  # the GET only


def test_bad_grants_are_400(served: RunningServer) -> None:
    for body in (
        {"name": "x", "tools": ["calculator"], "read_only": True},
        {"name": "x", "tools": ["rm_rf"]},
        {"name": "x", "tools": ["mcp:nowhere"]},
    ):
        response = httpx.post(
            served.base_url + "/admin/keys", json=body, headers={"Authorization": f"Bearer {ADMIN}"}
        )
        assert response.status_code == 400, body
        assert response.json()["error"]["param"] == "tools"
