"""The audit log, end to end on SQLite and PostgreSQL: every key change (CLI and API), every
agent change through the API and every new version of an agent file is recorded with who
made it and when, never a secret; ``GET /admin/audit`` (admin only) and ``headend audit``
list them newest first, filtered and paged."""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, command, issue, make_site, serve
from tests.postgres import store_of
from tests.upstream import FakeUpstream

pytestmark = pytest.mark.e2e

SUPPORT = "---\nmodel: gpt\n---\nYou are support.\n"
WAIT = 15.0


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(
    request: pytest.FixtureRequest, upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    store = store_of(request, request.param, "audit")
    root = tmp_path_factory.mktemp(f"audit-{request.param}")
    return make_site(root, upstream, "audit", {"support": SUPPORT}, f"store: {store}\n")


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[RunningServer]:
    running = serve(site)
    yield running
    stop_server(running)


def bearer(secret: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def entries(server: RunningServer, secret: str = ADMIN, **query: str | int) -> list[dict[str, Any]]:
    found = httpx.get(server.base_url + "/admin/audit", params=query, headers=bearer(secret))
    assert found.status_code == 200, found.text
    data: list[dict[str, Any]] = found.json()["data"]
    return data


def test_key_changes_are_recorded_with_who_made_them_and_no_secret(
    site: Path, server: RunningServer
) -> None:
    started = time.time()
    boss = issue(server, name="boss", scopes=["admin"])  # by the bootstrap key
    made = httpx.post(
        server.base_url + "/admin/keys",
        json={"name": "ci", "scopes": ["chat"], "rpm": 60, "budget": 5, "budget_period": "day"},
        headers=bearer(boss["secret"]),
    ).json()
    rotated = httpx.post(
        server.base_url + f"/admin/keys/{made['id']}/rotate", headers=bearer(boss["secret"])
    ).json()
    printed = command(site, "keys", "create", "--name", "from-cli", "--scope", "chat")
    cli_key = printed.split()[0]
    command(site, "keys", "revoke", made["id"])

    log = entries(server, target=made["id"])
    assert [(e["action"], e["actor"]) for e in log] == [
        ("key.revoke", f"cli:{getpass.getuser()}"),
        ("key.rotate", boss["id"]),
        ("key.create", boss["id"]),
    ]
    created = log[-1]
    assert created["detail"] == {
        "name": "ci",
        "prefix": made["prefix"],
        "scopes": ["chat"],
        "rpm": 60,
        "budget": 5.0,
        "budget_period": "day",
        "tools": "all",
        "require_approval": False,
        "publishable": False,
    }
    assert log[1]["detail"] == {"prefix": rotated["secret"][: len(made["prefix"])]}
    assert started - 1 <= created["at"] <= time.time() + 1
    assert entries(server, target=str(boss["id"]))[0]["actor"] == "admin"
    assert entries(server, target=cli_key)[0]["action"] == "key.create"

    everything = json.dumps(entries(server, limit=1000))
    for secret in (made["secret"], rotated["secret"], boss["secret"], printed.splitlines()[1]):
        assert str(secret) not in everything


def test_agent_changes_and_file_versions_are_recorded(site: Path, server: RunningServer) -> None:
    # The file agent's first version was recorded at start-up, by the file.
    [first] = entries(server, target="support")
    assert (first["action"], first["actor"], first["detail"]) == (
        "agent.version",
        "file",
        {"version": 1},
    )
    editor = issue(server, name="editor", scopes=["chat", "agents:write"])
    headers = bearer(editor["secret"])

    def change(method: str, path: str, body: object = None) -> None:
        done = httpx.request(
            method, server.base_url + "/admin/agents" + path, json=body, headers=headers
        )
        assert done.is_success, done.text

    change("POST", "", {"id": "faq", "model": "gpt", "prompt": "One."})
    change("POST", "/faq/publish")
    change("PUT", "/faq/draft", {"model": "gpt", "prompt": "Two."})
    change("POST", "/faq/publish")
    change("POST", "/faq/publish", {"version": 1})
    change("PUT", "/faq/draft", {"model": "gpt", "prompt": "Three."})
    change("DELETE", "/faq/draft")
    change("DELETE", "/faq")
    log = entries(server, target="faq")
    assert {e["actor"] for e in log} == {editor["id"]}
    assert [(e["action"], e["detail"]) for e in reversed(log)] == [
        ("agent.create", {}),
        ("agent.publish", {"version": 1, "previous": None, "rollback": False}),
        ("agent.draft", {}),
        ("agent.publish", {"version": 2, "previous": 1, "rollback": False}),
        ("agent.publish", {"version": 1, "previous": 2, "rollback": True}),
        ("agent.draft", {}),
        ("agent.discard", {}),
        ("agent.delete", {"version": 1}),
    ]

    # An edited file is its next version, recorded once; an unchanged one is not again.
    (site / "agents" / "support.md").write_text(SUPPORT.replace("support", "support, v2"))
    deadline = time.monotonic() + WAIT
    while len(entries(server, target="support")) < 2:
        assert time.monotonic() < deadline, "the edit was not recorded"
        time.sleep(0.2)
    latest = entries(server, target="support")[0]
    assert (latest["action"], latest["actor"], latest["detail"]) == (
        "agent.version",
        "file",
        {"version": 2},
    )


def test_the_audit_is_listed_filtered_paged_and_only_for_admin(
    site: Path, server: RunningServer
) -> None:
    for n in range(3):
        issue(server, name=f"page-{n}")
    newest = entries(server, limit=2)
    response = httpx.get(
        server.base_url + "/admin/audit", params={"limit": 2}, headers=bearer(ADMIN)
    ).json()
    assert response["has_more"] is True
    assert [e["detail"]["name"] for e in newest] == ["page-2", "page-1"]
    older = entries(server, limit=1, before=newest[-1]["id"])
    assert older[0]["detail"]["name"] == "page-0"
    assert all(e["action"].startswith("key.") for e in entries(server, action="key"))
    assert {e["action"] for e in entries(server, action="agent.version")} == {"agent.version"}
    assert {e["actor"] for e in entries(server, actor="file")} == {"file"}

    for query, param in (
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"before": "x"}, "before"),
        ({"action": "key.delete"}, "action"),
        ({"action": "ke"}, "action"),
    ):
        refused = httpx.get(server.base_url + "/admin/audit", params=query, headers=bearer(ADMIN))
        assert refused.status_code == 400, query
        assert refused.json()["error"]["param"] == param
    editor = issue(server, name="not-admin", scopes=["chat", "agents:write"])
    forbidden = httpx.get(server.base_url + "/admin/audit", headers=bearer(editor["secret"]))
    assert forbidden.status_code == 403

    printed = command(site, "audit", "--limit", "3", "--action", "key").splitlines()
    assert printed[0].split() == ["ID", "AT", "(UTC)", "ACTOR", "ACTION", "TARGET", "DETAIL"]
    assert len(printed) == 4
    assert "not-admin" in printed[1]  # its detail
    assert "admin" in printed[1].split()[3]  # the bootstrap key
    by_name = command(site, "audit", "--actor", str(editor["id"]))
    assert len(by_name.splitlines()) == 1  # it changed nothing
    boss = issue(server, name="boss-2", scopes=["admin"])
    httpx.post(
        server.base_url + "/admin/keys", json={"name": "by-boss"}, headers=bearer(boss["secret"])
    )
    assert f"{boss['id']} (boss-2)" in command(site, "audit", "--limit", "1")
