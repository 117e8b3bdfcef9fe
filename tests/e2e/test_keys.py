"""Keys, scopes and agent allowlists, through the openai SDK and raw HTTP."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import RunningServer, free_port, stop_server
from tests.e2e.sites import ADMIN, HI, issue, make_site, serve
from tests.upstream import FakeUpstream

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def secured(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    agents = {name: f"---\nmodel: up/{name}\n---\n" for name in ("alpha", "beta")}
    server = serve(make_site(tmp_path_factory.mktemp("keys"), upstream, "k", agents))
    yield server
    stop_server(server)


def sdk(server: RunningServer, secret: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api, api_key=str(secret), max_retries=0)


def test_missing_or_wrong_keys_are_401(secured: RunningServer) -> None:
    response = httpx.post(
        secured.api + "/chat/completions", json={"model": "alpha", "messages": HI}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk(secured, "sk-he-wrong").chat.completions.create(model="alpha", messages=HI)
    assert caught.value.code == "invalid_api_key"
    assert httpx.get(secured.base_url + "/health").status_code == 200


def test_scopes_and_allowlists(secured: RunningServer, fake: FakeUpstream) -> None:
    chat_alpha = issue(secured, name="alpha-chat", scopes=["chat:write"], agents=["alpha"])
    reader = issue(secured, name="reader", scopes=["models:read"])
    assert str(chat_alpha["secret"]).startswith("sk-he-")
    assert chat_alpha["scopes"] == ["chat"]
    client = sdk(secured, chat_alpha["secret"])
    assert client.chat.completions.create(model="alpha", messages=HI).choices[0].message.content
    with pytest.raises(openai.NotFoundError) as hidden:
        client.chat.completions.create(model="beta", messages=HI)
    assert hidden.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt", messages=HI)
    with pytest.raises(openai.PermissionDeniedError) as denied:
        client.models.list()
    assert denied.value.code == "insufficient_scope"
    with pytest.raises(openai.PermissionDeniedError):
        sdk(secured, reader["secret"]).chat.completions.create(model="alpha", messages=HI)
    assert sorted(m.id for m in sdk(secured, reader["secret"]).models.list()) == [
        "alpha",
        "beta",
        "gpt",
    ]
    limited = issue(secured, name="alpha-models", scopes=["models:read"], agents=["alpha"])
    assert [m.id for m in sdk(secured, limited["secret"]).models.list()] == ["alpha"]
    # x-api-key is what Anthropic clients send.
    response = httpx.post(
        secured.api + "/chat/completions",
        json={"model": "alpha", "messages": HI},
        headers={"x-api-key": str(chat_alpha["secret"])},
    )
    assert response.status_code == 200


def test_sessions_are_invisible_across_keys(secured: RunningServer, fake: FakeUpstream) -> None:
    one = issue(secured, name="one", scopes=["chat", "sessions:read"])
    two = issue(secured, name="two", scopes=["chat", "sessions:read"])
    reply = sdk(secured, one["secret"]).chat.completions.create(model="alpha", messages=HI)
    session_id = reply.model_extra["session_id"]  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as caught:
        sdk(secured, two["secret"]).chat.completions.create(
            model="alpha", messages=HI, extra_body={"session_id": session_id}
        )
    assert caught.value.code == "session_not_found"
    other = {"Authorization": f"Bearer {two['secret']}"}
    assert httpx.get(f"{secured.api}/sessions/{session_id}", headers=other).status_code == 404
    assert httpx.get(f"{secured.api}/sessions", headers=other).json()["data"] == []
    mine = {"Authorization": f"Bearer {one['secret']}"}
    assert httpx.get(f"{secured.api}/sessions/{session_id}", headers=mine).status_code == 200


def test_revoked_and_rotated_keys_stop_working_within_a_second(
    secured: RunningServer, fake: FakeUpstream
) -> None:
    key = issue(secured, name="short-lived", scopes=["chat"])
    client = sdk(secured, key["secret"])
    client.chat.completions.create(model="alpha", messages=HI)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    rotated = httpx.post(f"{secured.base_url}/admin/keys/{key['id']}/rotate", headers=admin).json()
    time.sleep(1.1)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="alpha", messages=HI)
    fresh = sdk(secured, rotated["secret"])
    fresh.chat.completions.create(model="alpha", messages=HI)
    assert (
        httpx.delete(f"{secured.base_url}/admin/keys/{key['id']}", headers=admin).json()["revoked"]
        is True
    )
    time.sleep(1.1)
    with pytest.raises(openai.AuthenticationError):
        fresh.chat.completions.create(model="alpha", messages=HI)
    listed = httpx.get(secured.base_url + "/admin/keys", headers=admin).json()["data"]
    entry = next(k for k in listed if k["id"] == key["id"])
    assert entry["revoked_at"] is not None
    assert "secret" not in entry


def test_admin_needs_the_admin_scope_and_secrets_stay_out_of_logs(
    secured: RunningServer,
) -> None:
    chat = issue(secured, name="no-admin", scopes=["chat"])
    response = httpx.get(
        secured.base_url + "/admin/keys", headers={"Authorization": f"Bearer {chat['secret']}"}
    )
    assert response.status_code == 403
    bad = httpx.post(
        secured.base_url + "/admin/keys",
        json={"name": "x", "scopes": ["root"]},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "scopes"  # not "agents" (its message names both)
    log = secured.output()
    assert ADMIN not in log
    assert str(chat["secret"]) not in log


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"scopes": ["root"]}, "scopes"),
        ({"agents": ["gamma"]}, "agents"),  # nobody has it
        ({"expires": "soon"}, "expires"),
        ({"budget_period": "day"}, "budget_period"),
        ({"rpm": 0}, "rpm"),
        ({"tools": ["nope"]}, "tools"),
        ({"publishable": True, "origins": ["https://shop.test"]}, "agents"),
        ({"publishable": True, "agents": ["alpha"], "origins": ["shop"]}, "origins"),
        ({"publishable": True, "agents": ["alpha"]}, "origins"),
    ],
)
def test_a_key_that_cannot_be_is_a_400_naming_its_field(
    secured: RunningServer, body: dict[str, object], param: str
) -> None:
    refused = httpx.post(
        secured.base_url + "/admin/keys",
        json={"name": "x", **body},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == param, refused.text


def test_no_keys_on_a_public_address_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "agents").mkdir()
    command = [
        sys.executable,
        "-m",
        "headend",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        str(free_port()),
        "--agents",
        str(tmp_path / "agents"),
    ]
    refused = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert refused.returncode == 1
    # One line that says what to do, not uvicorn's traceback.
    assert "Traceback" not in refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "--insecure-no-auth" in errors[0]
