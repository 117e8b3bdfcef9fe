"""Agents made through the admin API, on SQLite and PostgreSQL: created with a draft, the
draft checked as ``headend check`` checks a file, run as ``faq@draft`` by keys that may edit
it, published as the next version, rolled back by publishing an earlier one; file agents
are read-only here, and a key limited to some agents manages only those."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, HI, issue, make_site, serve
from tests.postgres import store_of
from tests.upstream import FakeUpstream

pytestmark = pytest.mark.e2e

ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}
SUPPORT = "---\nmodel: gpt\n---\nYou are support.\n"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(
    request: pytest.FixtureRequest, upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    store = store_of(request, request.param, "publishing")
    prefix = f"publish-{request.param}"
    return make_site(
        tmp_path_factory.mktemp(prefix),
        upstream,
        prefix,
        {"support": SUPPORT},
        f"store: {store}\n",
    )


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[RunningServer]:
    running = serve(site)
    yield running
    stop_server(running)


def admin(
    server: RunningServer,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.request(
        method,
        server.base_url + "/admin/agents" + path,
        json=body,
        headers=headers or ADMIN_HEADERS,
        timeout=30,
    )


def chat(
    server: RunningServer, model: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(
        server.api + "/chat/completions",
        json={"model": model, "messages": HI},
        headers=headers or ADMIN_HEADERS,
        timeout=30,
    )


def prompt_sent(fake: FakeUpstream, site: Path) -> str:
    prefix = site.name.rstrip("0123456789")
    prompt: str = fake.received(prefix)[-1].body["messages"][0]["content"]
    return prompt


def served_models(server: RunningServer) -> dict[str, Any]:
    listed = httpx.get(server.api + "/models", headers=ADMIN_HEADERS).json()["data"]
    return {entry["id"]: entry for entry in listed}


def bearer(key: dict[str, object]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key['secret']}"}


def test_a_created_agent_runs_as_its_draft_until_published(
    server: RunningServer, site: Path, fake: FakeUpstream
) -> None:
    created = admin(server, "POST", "", {"id": "faq", "model": "gpt", "prompt": "You answer."})
    assert created.status_code == 200, created.text
    agent = created.json()
    assert (agent["object"], agent["origin"], agent["version"]) == ("agent", "api", None)
    assert agent["draft"] == "---\nmodel: gpt\n---\nYou answer.\n"
    assert agent["draft_by"] == agent["created_by"] == "admin"
    assert "faq" not in served_models(server)  # a draft is not served
    assert chat(server, "faq").status_code == 404

    drafted = chat(server, "faq@draft")
    assert drafted.status_code == 200, drafted.text
    assert drafted.json()["model"] == "faq@draft"
    assert prompt_sent(fake, site) == "You answer."

    published = admin(server, "POST", "/faq/publish")
    assert published.status_code == 200, published.text
    assert (published.json()["version"], published.json()["draft"]) == (1, None)
    assert published.json()["published_by"] == "admin"
    assert served_models(server)["faq"]["version"] == 1
    assert chat(server, "faq").status_code == 200
    assert prompt_sent(fake, site) == "You answer."
    assert chat(server, "faq@draft").status_code == 404  # published: no draft left


def test_publishing_the_draft_is_the_next_version_and_an_earlier_one_rolls_back(
    server: RunningServer, site: Path, fake: FakeUpstream
) -> None:
    first = "---\nmodel: gpt\ntemperature: 0.2\n---\nYou sell, gently.\n"
    assert admin(server, "POST", "", {"id": "sales", "content": first}).status_code == 200
    assert admin(server, "POST", "/sales/publish").json()["version"] == 1
    second = first.replace("gently", "boldly")
    saved = admin(server, "PUT", "/sales/draft", {"content": second})
    assert saved.status_code == 200, saved.text
    assert (saved.json()["version"], saved.json()["draft"]) == (1, second)

    diff = admin(server, "GET", "/sales/diff")  # the served version against the draft
    assert diff.status_code == 200, diff.text
    assert diff.json()["before"] == "1"
    assert diff.json()["after"] == "draft"
    assert "-You sell, gently.\n+You sell, boldly.\n" in diff.json()["diff"]

    assert admin(server, "POST", "/sales/publish").json()["version"] == 2
    chat(server, "sales")
    assert prompt_sent(fake, site) == "You sell, boldly."
    assert chat(server, "sales@1").status_code == 200  # the earlier version still runs
    assert prompt_sent(fake, site) == "You sell, gently."

    rolled = admin(server, "POST", "/sales/publish", {"version": 1})
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["version"] == 1
    chat(server, "sales")
    assert prompt_sent(fake, site) == "You sell, gently."
    assert served_models(server)["sales"]["version"] == 1
    versions = admin(server, "GET", "/sales/versions").json()["data"]
    assert [(v["version"], v["served"], v["origin"]) for v in versions] == [
        (2, False, "api"),
        (1, True, "api"),
    ]
    assert all(v["created_by"] == "admin" for v in versions)
    between = admin(server, "GET", "/sales/diff?before=2&after=1").json()["diff"]
    assert "-You sell, boldly.\n+You sell, gently.\n" in between


def check_messages(tmp_path: Path, text: str) -> list[str]:
    """What ``headend check`` says of an agent file with this text, without its path."""
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "faq.md").write_text(text)
    (tmp_path / "headend.yaml").write_text("providers:\n  up: {type: openai, base_url: x}\n")
    ran = subprocess.run(
        [sys.executable, "-m", "headend", "check", "--agents", str(agents)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert ran.returncode == 1
    lines = [line.strip() for line in ran.stderr.splitlines() if str(agents) in line]
    return [line.split(f"{agents / 'faq.md'}: ", 1)[1] for line in lines]


def test_a_draft_is_checked_as_headend_check_checks_a_file_and_keeps_the_last_good_one(
    server: RunningServer, tmp_path: Path
) -> None:
    assert (
        admin(server, "POST", "", {"id": "checked", "model": "gpt", "prompt": "Fine."}).status_code
        == 200
    )
    bad = "---\nmodel: gpt\ntemperatur: 0.3\nmax_iterations: 0\n---\nOops.\n"
    refused = admin(server, "PUT", "/checked/draft", {"content": bad})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "invalid_agent",
        "content",
    )
    expected = check_messages(tmp_path, bad)
    assert len(expected) == 2
    assert error["message"] == "; ".join(f"checked@draft: {line}" for line in expected)
    kept = admin(server, "GET", "/checked").json()
    assert kept["draft"] == "---\nmodel: gpt\n---\nFine.\n"  # the refused draft replaced nothing

    unknown_route = admin(server, "PUT", "/checked/draft", {"model": "nowhere", "prompt": "x"})
    assert unknown_route.status_code == 400
    assert "checked@draft: model: 'nowhere'" in unknown_route.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "param"),
    [
        ("POST", "", [], 400, None),
        ("POST", "", {"prompt": "no id"}, 400, "id"),
        ("POST", "", {"id": "bad id!", "prompt": "x"}, 400, "id"),
        ("POST", "", {"id": "mixed", "content": "x", "prompt": "y"}, 400, "prompt"),
        ("POST", "", {"id": "typed", "content": 3}, 400, "content"),
        ("POST", "", {"id": "support", "model": "gpt", "prompt": "x"}, 409, "id"),  # a file's agent
        ("POST", "", {"id": "gpt", "model": "gpt", "prompt": "x"}, 409, "id"),  # a model route
        ("PUT", "/support/draft", {"prompt": "x"}, 409, "agent_id"),
        ("POST", "/support/publish", None, 409, "agent_id"),
        ("DELETE", "/support", None, 409, "agent_id"),
        ("PUT", "/nobody/draft", {"prompt": "x"}, 404, "agent_id"),
        ("POST", "/nobody/publish", None, 404, "agent_id"),
        ("GET", "/nobody", None, 404, "agent_id"),
        ("GET", "/support/diff?before=1&after=draft", None, 409, "agent_id"),
        ("GET", "/support/diff?before=x", None, 400, "before"),
    ],
)
def test_bad_agent_requests_get_a_clear_error(
    server: RunningServer,
    method: str,
    path: str,
    body: Any,
    status: int,
    param: str | None,
) -> None:
    answer = admin(server, method, path, body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["param"] == param
    assert error["message"]


def test_a_diff_names_the_side_it_cannot_find(server: RunningServer) -> None:
    assert admin(server, "POST", "", {"id": "diffed", "model": "gpt", "prompt": "D."}).is_success
    assert admin(server, "POST", "/diffed/publish").is_success  # the draft is now version 1
    for query, param in (("before=9", "before"), ("before=1&after=draft", "after")):
        missing = admin(server, "GET", f"/diffed/diff?{query}")
        assert missing.status_code == 404, query
        assert missing.json()["error"]["param"] == param


def test_publishing_needs_a_draft_or_a_version_it_has(server: RunningServer) -> None:
    assert (
        admin(server, "POST", "", {"id": "thin", "model": "gpt", "prompt": "Thin."}).status_code
        == 200
    )
    assert admin(server, "POST", "/thin/publish").status_code == 200
    again = admin(server, "POST", "/thin/publish")
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "no_draft"
    missing = admin(server, "POST", "/thin/publish", {"version": 7})
    assert (missing.status_code, missing.json()["error"]["param"]) == (404, "version")
    wrong = admin(server, "POST", "/thin/publish", {"version": "1"})
    assert (wrong.status_code, wrong.json()["error"]["param"]) == (400, "version")
    assert chat(server, "thin").status_code == 200  # still served as it was


def test_a_file_agent_is_listed_read_only(server: RunningServer) -> None:
    listed = {a["id"]: a for a in admin(server, "GET", "").json()["data"]}
    support = listed["support"]
    assert (support["origin"], support["version"], support["content"]) == ("file", 1, SUPPORT)
    assert support["draft"] is None
    one = admin(server, "GET", "/support").json()
    assert one == support
    versions = admin(server, "GET", "/support/versions").json()["data"]
    assert [v["origin"] for v in versions] == ["file"]


def test_drafts_and_agent_management_need_agents_write(server: RunningServer) -> None:
    assert (
        admin(server, "POST", "", {"id": "scoped", "model": "gpt", "prompt": "Scoped."}).status_code
        == 200
    )
    chatter = bearer(issue(server, name="chatter", scopes=["chat", "models:read"]))
    refused = admin(server, "GET", "", headers=chatter)
    assert refused.status_code == 403
    assert "agents:write" in refused.json()["error"]["message"]
    draft_run = chat(server, "scoped@draft", chatter)
    assert draft_run.status_code == 403
    assert draft_run.json()["error"]["code"] == "insufficient_scope"
    # One rule wherever a draft is named: the same refusal from /v1/models.
    read = httpx.get(server.api + "/models/scoped@draft", headers=chatter)
    assert read.status_code == 403
    assert read.json()["error"] == draft_run.json()["error"]
    # A key that may write agents but not chat reads the draft and may not run it.
    writer = bearer(issue(server, name="writer", scopes=["agents:write"]))
    assert httpx.get(server.api + "/models/scoped@draft", headers=writer).status_code == 200
    assert chat(server, "scoped@draft", writer).status_code == 403

    editor = bearer(issue(server, name="editor", scopes=["chat", "agents:write"]))
    assert chat(server, "scoped@draft", editor).status_code == 200
    published = admin(server, "POST", "/scoped/publish", headers=editor)
    assert published.status_code == 200
    assert published.json()["published_by"].startswith("key_")
    assert chat(server, "scoped", chatter).status_code == 200
    # agents:write is not the rest of admin
    keys = httpx.get(server.base_url + "/admin/keys", headers=editor)
    assert keys.status_code == 403
    # but who may change agents may list them (models:read), and so may admin
    writer = bearer(issue(server, name="writer", scopes=["agents:write"]))
    boss = bearer(issue(server, name="boss", scopes=["admin"]))
    for lister in (writer, boss):
        listed = httpx.get(server.api + "/models", headers=lister)
        assert listed.status_code == 200
        assert "scoped" in [m["id"] for m in listed.json()["data"]]
    assert chat(server, "scoped", writer).status_code == 403  # chat is not included


def test_a_key_limited_to_some_agents_manages_only_those(server: RunningServer) -> None:
    limited = bearer(
        issue(server, name="limited", scopes=["chat", "agents:write"], agents=["mine"])
    )
    created = admin(
        server, "POST", "", {"id": "mine", "model": "gpt", "prompt": "Mine."}, headers=limited
    )
    assert created.status_code == 200, created.text
    assert [a["id"] for a in admin(server, "GET", "", headers=limited).json()["data"]] == ["mine"]
    assert admin(server, "GET", "/support", headers=limited).status_code == 404
    assert admin(server, "GET", "/support/versions", headers=limited).status_code == 404
    other = admin(
        server, "POST", "", {"id": "theirs", "model": "gpt", "prompt": "x"}, headers=limited
    )
    refusal = other.json()["error"]
    assert other.status_code == 403
    assert (refusal["param"], refusal["code"]) == ("id", "insufficient_scope")


def test_a_deleted_agent_is_no_longer_served_but_its_history_stays(
    server: RunningServer,
) -> None:
    assert (
        admin(server, "POST", "", {"id": "gone", "model": "gpt", "prompt": "Bye."}).status_code
        == 200
    )
    assert admin(server, "POST", "/gone/publish").status_code == 200
    assert chat(server, "gone").status_code == 200
    deleted = admin(server, "DELETE", "/gone")
    assert deleted.json() == {"id": "gone", "object": "agent.deleted", "deleted": True}
    assert chat(server, "gone").status_code == 404
    assert chat(server, "gone@1").status_code == 404
    assert "gone" not in served_models(server)
    assert [v["version"] for v in admin(server, "GET", "/gone/versions").json()["data"]] == [1]
    back = admin(server, "POST", "", {"id": "gone", "model": "gpt", "prompt": "Back."})
    assert back.status_code == 200
    assert admin(server, "POST", "/gone/publish").json()["version"] == 2  # history goes on


def test_a_restart_serves_each_agent_at_the_version_published(
    site: Path, server: RunningServer, fake: FakeUpstream
) -> None:
    admin(server, "POST", "", {"id": "lasting", "model": "gpt", "prompt": "One."})
    admin(server, "POST", "/lasting/publish")
    admin(server, "PUT", "/lasting/draft", {"model": "gpt", "prompt": "Two."})
    admin(server, "POST", "/lasting/publish")
    admin(server, "POST", "/lasting/publish", {"version": 1})
    admin(server, "PUT", "/lasting/draft", {"model": "gpt", "prompt": "Three, unpublished."})
    stop_server(server)
    again = serve(site, "again.log")
    try:
        assert served_models(again)["lasting"]["version"] == 1
        assert chat(again, "lasting").status_code == 200
        assert prompt_sent(fake, site) == "One."
        kept = admin(again, "GET", "/lasting").json()
        assert kept["draft"] == "---\nmodel: gpt\n---\nThree, unpublished.\n"
    finally:
        stop_server(again)
