"""Console sign-in: a key exchanged once for an HttpOnly, SameSite=Strict cookie that then
acts as the key; requests that change something must come from headend's own origin;
signing out, revoking or rotating the key ends it."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import RunningServer
from tests.e2e.sites import ADMIN, HI, issue, site_fixture
from tests.upstream import FakeUpstream

pytestmark = pytest.mark.e2e

served = site_fixture("s", {"helper": "---\nmodel: up/helper\n---\nYou help.\n"})


def own_origin(server: RunningServer) -> dict[str, str]:
    return {"Origin": server.base_url}


def sign_in(server: RunningServer, key: object) -> httpx.Client:
    """A browser-like client signed in with the key (the cookie is all it keeps)."""
    browser = httpx.Client(base_url=server.base_url, timeout=30)
    response = browser.post(
        "/console/api/session", json={"key": str(key)}, headers=own_origin(server)
    )
    assert response.status_code == 200, response.text
    return browser


def test_signing_in_sets_a_strict_httponly_cookie(served: RunningServer) -> None:
    key = issue(served, name="console", scopes=["chat", "models:read"])
    browser = httpx.Client(base_url=served.base_url)
    response = browser.post(
        "/console/api/session", json={"key": key["secret"]}, headers=own_origin(served)
    )
    assert response.status_code == 200
    assert response.json()["key_id"] == key["id"]
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("headend_console=")
    for flag in ("HttpOnly", "SameSite=strict", "Path=/", "Max-Age=43200"):
        assert flag.lower() in cookie.lower()
    assert str(key["secret"]) not in cookie  # the cookie is a token, never the key
    assert browser.get("/console/api/session").json()["scopes"] == [
        "chat",
        "knowledge",
        "models:read",
    ]


def test_the_session_lists_the_scopes_a_keys_scopes_include(served: RunningServer) -> None:
    writer = sign_in(served, issue(served, name="writer", scopes=["agents:write"])["secret"])
    assert writer.get("/console/api/session").json()["scopes"] == ["agents:write", "models:read"]
    boss = sign_in(served, issue(served, name="boss", scopes=["admin"])["secret"])
    assert boss.get("/console/api/session").json()["scopes"] == [
        "admin",
        "agents:write",
        "models:read",
    ]


def test_the_cookie_acts_as_the_key(served: RunningServer, fake: FakeUpstream) -> None:
    key = issue(served, name="console", scopes=["chat", "models:read"], agents=["helper"])
    browser = sign_in(served, key["secret"])
    assert [m["id"] for m in browser.get("/v1/models").json()["data"]] == ["helper"]
    answer = browser.post(
        "/v1/chat/completions",
        json={"model": "helper", "messages": HI},
        headers=own_origin(served),
    )
    assert answer.status_code == 200, answer.text
    # The key's own limits hold: no admin, no other agent.
    assert browser.get("/admin/keys").status_code == 403
    other = browser.post(
        "/v1/chat/completions", json={"model": "gpt", "messages": HI}, headers=own_origin(served)
    )
    assert other.status_code == 404


@pytest.mark.parametrize("origin", [None, "https://evil.example", "http://127.0.0.1:1"])
def test_changes_must_come_from_headends_own_origin(
    served: RunningServer, fake: FakeUpstream, origin: str | None
) -> None:
    browser = sign_in(served, ADMIN)
    headers = {"Origin": origin} if origin else {}
    refused = browser.post(
        "/v1/chat/completions", json={"model": "helper", "messages": HI}, headers=headers
    )
    assert refused.status_code == 403
    assert "Origin" in refused.json()["error"]["message"]
    assert fake.received("s") == []
    assert browser.get("/v1/models").status_code == 200  # reading needs no Origin
    cross = httpx.post(
        served.base_url + "/console/api/session", json={"key": ADMIN}, headers=headers
    )
    assert cross.status_code == 403  # nor may another site sign a browser in
    assert "set-cookie" not in cross.headers


def test_signing_out_revoking_or_rotating_ends_it(served: RunningServer) -> None:
    for ending in ("sign out", "revoke", "rotate"):
        key = issue(served, name="console", scopes=["models:read"])
        browser = sign_in(served, key["secret"])
        token = browser.cookies["headend_console"]
        assert browser.get("/v1/models").status_code == 200
        admin = {"Authorization": f"Bearer {ADMIN}"}
        if ending == "sign out":
            out = browser.delete("/console/api/session", headers=own_origin(served))
            assert out.status_code == 200
            assert "headend_console=" in out.headers["set-cookie"]
        elif ending == "revoke":
            httpx.delete(f"{served.base_url}/admin/keys/{key['id']}", headers=admin)
            time.sleep(1.1)  # keys are cached for a second: revocation holds within it
        else:
            httpx.post(f"{served.base_url}/admin/keys/{key['id']}/rotate", headers=admin)
            time.sleep(1.1)
        replayed = httpx.get(served.api + "/models", headers={"Cookie": f"headend_console={token}"})
        assert replayed.status_code == 401, ending  # server-side: a kept cookie is no use


def test_bad_keys_and_tokens_are_401(served: RunningServer) -> None:
    refused = httpx.post(
        served.base_url + "/console/api/session",
        json={"key": "sk-he-wrong"},
        headers=own_origin(served),
    )
    assert refused.status_code == 401
    assert "set-cookie" not in refused.headers
    forged = httpx.get(served.api + "/models", headers={"Cookie": "headend_console=forged"})
    assert forged.status_code == 401
    assert httpx.get(served.base_url + "/console/api/session").status_code == 401
