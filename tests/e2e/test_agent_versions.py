"""Agent versions, end to end: a changed file is a new version recorded in the store, the
old one still runs as ``support@1``, and each stored turn says which version answered it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, HI, issue, make_site, serve
from tests.upstream import FakeUpstream

pytestmark = pytest.mark.e2e

PREFIX = "versions"
FIRST = "---\nmodel: gpt\n---\nYou are support, first of your name.\n"
SECOND = "---\nmodel: gpt\n---\nYou are support, second of your name.\n"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}


def chat(server: RunningServer, model: str, **extra: object) -> httpx.Response:
    return httpx.post(
        server.api + "/chat/completions",
        json={"model": model, "messages": HI, **extra},
        headers=extra.pop("headers", ADMIN_HEADERS),  # type: ignore[arg-type]
        timeout=30,
    )


def system_prompt(fake: FakeUpstream) -> str:
    prompt: str = fake.received(PREFIX)[-1].body["messages"][0]["content"]
    return prompt


def model_entry(server: RunningServer, name: str) -> httpx.Response:
    return httpx.get(server.api + f"/models/{name}", headers=ADMIN_HEADERS)


@pytest.fixture(scope="module")
def site(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_site(tmp_path_factory.mktemp(PREFIX), upstream, PREFIX, {"support": FIRST})
    (root / "agents" / "other.md").write_text("---\nmodel: gpt\n---\nYou are another.\n")
    return root


@pytest.fixture(scope="module")
def first_run(site: Path) -> Iterator[RunningServer]:
    server = serve(site, "first.log")
    yield server
    stop_server(server)


def test_an_agent_starts_at_version_1(first_run: RunningServer, fake: FakeUpstream) -> None:
    listed = httpx.get(first_run.api + "/models", headers=ADMIN_HEADERS).json()["data"]
    entries = {entry["id"]: entry for entry in listed}
    assert entries["support"]["version"] == 1
    assert "version" not in entries["gpt"]  # a model route has no versions
    assert chat(first_run, "support").status_code == 200
    assert system_prompt(fake) == "You are support, first of your name."


def test_a_changed_file_is_the_next_version_and_the_old_one_still_runs(
    site: Path, first_run: RunningServer, fake: FakeUpstream
) -> None:
    started = chat(first_run, "support")
    session_id = started.json()["session_id"]
    stop_server(first_run)
    (site / "agents" / "support.md").write_text(SECOND)
    server = serve(site, "second.log")
    try:
        assert model_entry(server, "support").json()["version"] == 2
        assert chat(server, "support").status_code == 200
        assert system_prompt(fake) == "You are support, second of your name."

        pinned = chat(server, "support@1")
        assert pinned.status_code == 200, pinned.text
        assert pinned.json()["model"] == "support@1"  # answered as asked
        assert system_prompt(fake) == "You are support, first of your name."
        assert model_entry(server, "support@1").json() | {"created": 0} == {
            "id": "support@1",
            "object": "model",
            "created": 0,
            "owned_by": "headend",
            "version": 1,
        }

        history = httpx.get(
            server.base_url + "/admin/agents/support/versions", headers=ADMIN_HEADERS
        ).json()["data"]
        assert [(v["version"], v["served"], v["origin"]) for v in history] == [
            (2, True, "file"),
            (1, False, "file"),
        ]
        assert [v["content"] for v in history] == [SECOND, FIRST]
        unknown = httpx.get(
            server.base_url + "/admin/agents/nobody/versions", headers=ADMIN_HEADERS
        )
        assert unknown.status_code == 404
        assert unknown.json()["error"]["param"] == "agent_id"
        chat_key = issue(server, name="chat only", scopes=["chat"])["secret"]
        refused = httpx.get(
            server.base_url + "/admin/agents/support/versions",
            headers={"Authorization": f"Bearer {chat_key}"},
        )
        assert refused.status_code == 403  # the versions' texts are the operator's

        # A session goes on across versions: it belongs to the agent, not to a version.
        more = chat(server, "support@2", session_id=session_id)
        assert more.status_code == 200, more.text
        stored = httpx.get(server.api + f"/sessions/{session_id}", headers=ADMIN_HEADERS).json()
        assert stored["agent"] == "support"
        assert stored["turn_versions"] == [
            {"turn": 0, "agent_version": 1},
            {"turn": 1, "agent_version": 2},
        ]
    finally:
        stop_server(server)

    # The same file again: no new version.
    server = serve(site, "third.log")
    try:
        assert model_entry(server, "support").json()["version"] == 2
    finally:
        stop_server(server)


def test_a_version_that_never_was_is_an_unknown_model(site: Path) -> None:
    server = serve(site, "unknown.log")
    try:
        for name in ("support@3", "support@0", "support@01", "support@", "nobody@1"):
            response = chat(server, name)
            assert response.status_code == 404, (name, response.text)
            assert response.json()["error"]["code"] == "model_not_found"
            assert model_entry(server, name).status_code == 404, name
    finally:
        stop_server(server)


def test_a_version_the_configuration_can_no_longer_run_is_a_clear_400(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    extra = "  retired: up/old\n"
    root = make_site(tmp_path, upstream, PREFIX, {"support": "---\nmodel: retired\n---\nOld.\n"})
    config = root / "headend.yaml"
    config.write_text(config.read_text() + extra)
    stop_server(serve(root, "before.log"))  # version 1 runs on the route 'retired'
    (root / "agents" / "support.md").write_text(SECOND)
    config.write_text(config.read_text().replace(extra, ""))
    server = serve(root, "after.log")
    try:
        response = chat(server, "support@1")
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "model_version_unavailable"
        assert error["param"] == "model"
        assert "'retired'" in error["message"]
        assert chat(server, "support").status_code == 200
    finally:
        stop_server(server)


def test_a_key_for_an_agent_may_run_its_versions_and_no_other(site: Path) -> None:
    server = serve(site, "keys.log")
    try:
        support_key = issue(server, name="support only", agents=["support"])["secret"]
        other_key = issue(server, name="other only", agents=["other"])["secret"]
        allowed = chat(server, "support@1", headers={"Authorization": f"Bearer {support_key}"})
        assert allowed.status_code == 200, allowed.text
        refused = chat(server, "support@1", headers={"Authorization": f"Bearer {other_key}"})
        assert refused.status_code == 404
        assert refused.json()["error"]["code"] == "model_not_found"
    finally:
        stop_server(server)


def test_a_response_continued_with_a_version_of_its_agent_stays_in_its_session(
    site: Path,
) -> None:
    server = serve(site, "responses.log")

    def respond(**body: object) -> dict[str, object]:
        response = httpx.post(
            server.api + "/responses", json=body, headers=ADMIN_HEADERS, timeout=30
        )
        assert response.status_code == 200, response.text
        answer: dict[str, object] = response.json()
        return answer

    try:
        current = model_entry(server, "support").json()["version"]
        first = respond(model="support", input="Hi")
        second = respond(model="support@1", input="Again", previous_response_id=first["id"])
        assert second["model"] == "support@1"
        latest = httpx.get(server.api + "/sessions?limit=1", headers=ADMIN_HEADERS).json()
        [session] = latest["data"]
        assert session["turns"] == 2  # continued, not forked into a session of its own
        stored = httpx.get(server.api + f"/sessions/{session['id']}", headers=ADMIN_HEADERS)
        assert stored.json()["turn_versions"] == [
            {"turn": 0, "agent_version": current},
            {"turn": 1, "agent_version": 1},
        ]
    finally:
        stop_server(server)
