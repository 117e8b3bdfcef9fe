"""Tool calls that wait for a person, on the Responses wire, through the openai SDK, on SQLite
and PostgreSQL: the run stops at an ``mcp_approval_request``; the client continues with
``previous_response_id`` and an ``mcp_approval_response``; approved, the call runs with the
arguments it was asked with, denied or expired, the model is told why; answered once; the
audit keeps every answer; a restart between request and answer loses nothing."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, issue, make_site, serve
from tests.postgres import store_of
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

OPS = (
    "---\nmodel: up/ops\ntools: [terminal, calculator]\n"
    "require_approval: {always: [terminal]}\n---\nYou operate.\n"
)
FREE = "---\nmodel: up/free\ntools: [terminal, calculator]\n---\nYou operate.\n"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(
    request: pytest.FixtureRequest, upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    store = store_of(request, request.param, "approvals")
    root = tmp_path_factory.mktemp(f"approvals-{request.param}")
    extra = f"store: {store}\nsessions: {{approval_expires: 2s}}\n"
    return make_site(root, upstream, "ap", {"ops": OPS, "free": FREE}, extra)


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[RunningServer]:
    running = serve(site)
    yield running
    stop_server(running)


def sdk(server: RunningServer, key: str = ADMIN) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api, api_key=key, max_retries=0)


def call(call_id: str, name: str, arguments: dict[str, str]) -> dict[str, str]:
    return {"id": call_id, "name": name, "arguments": json.dumps(arguments)}


def answer(request_id: str, approve: bool, reason: str | None = None) -> list[Any]:
    item: dict[str, Any] = {
        "type": "mcp_approval_response",
        "approval_request_id": request_id,
        "approve": approve,
    }
    if reason is not None:
        item["reason"] = reason
    return [item]


def asked(response: Response) -> Any:
    """The response's one approval request."""
    (request,) = [item for item in response.output if item.type == "mcp_approval_request"]
    return request


def ask_to_write(fake: FakeUpstream, ledger: Path, server: RunningServer, **extra: Any) -> Response:
    """A turn whose model runs the calculator and asks to write the ledger."""
    command = f"echo written >> {ledger}"
    fake.script(
        "ap",
        Reply(
            text="Checking first.",
            tool_calls=[
                call("c1", "terminal", {"command": command}),
                call("c2", "calculator", {"expression": "6*7"}),
            ],
        ),
    )
    made: Response = sdk(server).responses.create(model="ops", input="Write the ledger.", **extra)
    return made


def test_an_approved_call_runs_with_the_arguments_asked_and_the_run_goes_on(
    server: RunningServer, fake: FakeUpstream, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    first = ask_to_write(fake, ledger, server)
    assert first.status == "completed"
    request = asked(first)
    assert (request.name, request.server_label) == ("terminal", "headend")
    assert json.loads(request.arguments) == {"command": f"echo written >> {ledger}"}
    assert first.output_text == "Checking first."
    assert not ledger.exists()  # asked, not run; the calculator (it only reads) did run

    fake.script("ap", Reply(text="Written, and it is 42."))
    second = sdk(server).responses.create(
        model="ops", previous_response_id=first.id, input=answer(request.id, True)
    )
    assert second.output_text == "Written, and it is 42."
    assert ledger.read_text() == "written\n"
    sent = fake.received("ap")[-1].body["messages"]
    calls = next(m for m in sent if m.get("tool_calls"))
    after = sent[sent.index(calls) + 1 :]
    assert [m["tool_call_id"] for m in after] == ["c2", "c1"]  # results right after the calls
    assert after[0]["content"] == "42"
    assert after[1]["content"].startswith("exit code 0")

    again = httpx.post(
        f"{server.api}/responses",
        json={"model": "ops", "previous_response_id": second.id, "input": answer(request.id, True)},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "approval_already_answered"
    assert ledger.read_text() == "written\n"  # and nothing ran twice
    metrics = httpx.get(f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {ADMIN}"})
    counted = {
        line.split()[0]: float(line.split()[1])
        for line in metrics.text.splitlines()
        if line.startswith("headend_approval")
    }
    assert counted['headend_approvals_total{outcome="requested"}'] >= 1
    assert counted['headend_approvals_total{outcome="approved"}'] >= 1
    assert counted['headend_approval_decision_seconds_count{outcome="approved"}'] >= 1


def test_a_denied_call_does_not_run_and_the_model_is_told_why(
    server: RunningServer, fake: FakeUpstream, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    first = ask_to_write(fake, ledger, server, stream=False)
    fake.script("ap", Reply(text="Understood, I left it."))
    second = sdk(server).responses.create(
        model="ops",
        previous_response_id=first.id,
        input=answer(asked(first).id, False, "not on a Friday"),
    )
    assert second.output_text == "Understood, I left it."
    assert not ledger.exists()
    told = fake.received("ap")[-1].body["messages"]
    result = next(m for m in told if m.get("tool_call_id") == "c1")
    assert "denied" in result["content"]
    assert "not on a Friday" in result["content"]


def test_a_streamed_run_shows_its_request_and_an_unknown_answer_is_refused(
    server: RunningServer, fake: FakeUpstream, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    command = f"echo streamed >> {ledger}"
    fake.script("ap", Reply(text="", tool_calls=[call("c1", "terminal", {"command": command})]))
    events = list(sdk(server).responses.create(model="ops", input="Write.", stream=True))
    added = [e for e in events if e.type == "response.output_item.added"]
    assert [e.item.type for e in added] == ["mcp_approval_request"]
    done = [e for e in events if e.type == "response.output_item.done"]
    assert done[-1].item.id == added[0].item.id
    final = events[-1]
    assert final.type == "response.completed"
    response_id = final.response.id
    wrong = httpx.post(
        f"{server.api}/responses",
        json={
            "model": "ops",
            "previous_response_id": response_id,
            "input": answer("mcpr_nope", True),
        },
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "approval_not_found"
    assert wrong.json()["error"]["param"] == "input[0].approval_request_id"
    other = str(issue(server, name="stranger")["secret"])  # another key: not its conversation
    foreign = httpx.post(
        f"{server.api}/responses",
        json={"model": "ops", "previous_response_id": response_id, "input": answer("x", True)},
        headers={"Authorization": f"Bearer {other}"},
    )
    assert foreign.status_code == 404
    assert not ledger.exists()


def test_an_answer_after_the_request_expired_runs_nothing(
    server: RunningServer, fake: FakeUpstream, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    first = ask_to_write(fake, ledger, server)
    time.sleep(2.5)  # sessions.approval_expires: 2s
    fake.script("ap", Reply(text="Too late, then."))
    sdk(server).responses.create(
        model="ops", previous_response_id=first.id, input=answer(asked(first).id, True)
    )
    assert not ledger.exists()
    told = fake.received("ap")[-1].body["messages"]
    assert "expired" in next(m for m in told if m.get("tool_call_id") == "c1")["content"]


def test_a_key_may_require_approval_of_every_call_that_does_more_than_read(
    server: RunningServer, fake: FakeUpstream, tmp_path: Path
) -> None:
    key = issue(server, name="careful", require_approval=True)
    assert key["require_approval"] is True
    ledger = tmp_path / "ledger.txt"
    fake.script(
        "ap",
        Reply(
            text="",
            tool_calls=[
                call("c1", "terminal", {"command": f"echo x >> {ledger}"}),
                call("c2", "calculator", {"expression": "1+1"}),
            ],
        ),
    )
    # the agent itself asks for nothing; the key does, for the terminal only
    first = sdk(server, str(key["secret"])).responses.create(model="free", input="Go.")
    assert asked(first).name == "terminal"
    assert not ledger.exists()
    assert fake.received("ap")  # the calculator ran without asking: its result went nowhere yet


def test_every_answer_is_audited_with_who_which_tool_and_the_arguments_hash(
    server: RunningServer, fake: FakeUpstream, tmp_path: Path
) -> None:
    first = ask_to_write(fake, tmp_path / "ledger.txt", server)
    request = asked(first)
    fake.script("ap", Reply(text="Fine."))
    sdk(server).responses.create(
        model="ops", previous_response_id=first.id, input=answer(request.id, False)
    )
    found = httpx.get(
        f"{server.base_url}/admin/audit",
        params={"action": "approval"},
        headers={"Authorization": f"Bearer {ADMIN}"},
    ).json()["data"]
    entry = next(e for e in found if e["target"] == request.id)
    assert entry["action"] == "approval.deny"
    assert entry["actor"] == "admin"
    detail = entry["detail"]
    assert detail["tool"] == "terminal"
    assert detail["arguments_sha256"] == hashlib.sha256(request.arguments.encode()).hexdigest()


def test_a_restart_between_request_and_answer_loses_nothing(
    site: Path, server: RunningServer, fake: FakeUpstream, tmp_path: Path
) -> None:
    """Run in the background, asked, the server stopped and started again, then answered."""
    ledger = tmp_path / "ledger.txt"
    queued = ask_to_write(fake, ledger, server, background=True)
    client = sdk(server)
    deadline = time.monotonic() + 15
    while (first := client.responses.retrieve(queued.id)).status != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    request = asked(first)
    again = serve(site, "again.log")  # another instance on the same store
    try:
        fake.script("ap", Reply(text="Done after the restart."))
        second = sdk(again).responses.create(
            model="ops", previous_response_id=first.id, input=answer(request.id, True)
        )
        assert second.output_text == "Done after the restart."
        assert ledger.read_text() == "written\n"
    finally:
        stop_server(again)


def test_chat_completions_say_what_waits_and_the_sessions_api_answers_it(
    server: RunningServer, fake: FakeUpstream, tmp_path: Path
) -> None:
    """A strict client shows the request as text and raises nothing; the answer goes
    through the sessions API; the next turn runs the call and goes on."""
    ledger = tmp_path / "ledger.txt"
    command = f"echo chat >> {ledger}"
    fake.script(
        "ap", Reply(text="On it.", tool_calls=[call("c1", "terminal", {"command": command})])
    )
    chat = sdk(server).chat.completions.create(
        model="ops", messages=[{"role": "user", "content": "Write the ledger."}]
    )
    text = chat.choices[0].message.content or ""
    assert chat.choices[0].finish_reason == "stop"
    assert text.startswith("On it.\n\nWaiting for your approval before running:\n- terminal ")
    extra = chat.model_extra or {}
    session_id = extra["session_id"]
    (request,) = extra["approval_requests"]
    assert f"POST /v1/sessions/{session_id}/approvals/{request['id']}" in text
    assert not ledger.exists()

    admin = {"Authorization": f"Bearer {ADMIN}"}
    listed = httpx.get(f"{server.api}/sessions/{session_id}/approvals", headers=admin).json()
    assert [(a["id"], a["status"], a["tool"]) for a in listed["data"]] == [
        (request["id"], "pending", "terminal")
    ]
    url = f"{server.api}/sessions/{session_id}/approvals/{request['id']}"
    stranger = {"Authorization": f"Bearer {issue(server, name='nosy')['secret']}"}
    assert httpx.post(url, json={"approve": True}, headers=stranger).status_code == 404
    answered = httpx.post(url, json={"approve": True}, headers=admin)
    assert answered.status_code == 200, answered.text
    assert (answered.json()["status"], answered.json()["applied"]) == ("approved", False)
    twice = httpx.post(url, json={"approve": False}, headers=admin)
    assert twice.json()["error"]["code"] == "approval_already_answered"
    assert not ledger.exists()  # answered: it runs when the conversation goes on

    fake.script("ap", Reply(text="Written."))
    going = sdk(server).chat.completions.create(
        model="ops",
        messages=[{"role": "user", "content": "Go on."}],
        extra_body={"session_id": session_id},
    )
    assert going.choices[0].message.content == "Written."
    assert ledger.read_text() == "chat\n"
    sent = fake.received("ap")[-1].body["messages"]
    assert [m["role"] for m in sent[-3:]] == ["assistant", "tool", "user"]  # the result in place
    again = httpx.get(f"{server.api}/sessions/{session_id}/approvals", headers=admin).json()
    assert again["data"][0]["applied"] is True


def test_the_anthropic_sdk_shows_the_request_as_text(
    server: RunningServer, fake: FakeUpstream, tmp_path: Path
) -> None:
    import anthropic

    command = f"echo claude >> {tmp_path / 'ledger.txt'}"
    fake.script("ap", Reply(text="", tool_calls=[call("c1", "terminal", {"command": command})]))
    client = anthropic.Anthropic(base_url=server.base_url, api_key=ADMIN, max_retries=0)
    with client.messages.stream(
        model="ops", max_tokens=200, messages=[{"role": "user", "content": "Write."}]
    ) as stream:
        said = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert said.startswith("Waiting for your approval before running:\n- terminal ")
    assert final.stop_reason == "end_turn"
    assert not (tmp_path / "ledger.txt").exists()


def test_a_messages_client_answers_through_the_sessions_api_and_goes_on(
    server: RunningServer, fake: FakeUpstream, tmp_path: Path
) -> None:
    """The README's Messages example: the session from the header, the request from the
    answer, approved, then the next message runs it."""
    import anthropic

    ledger = tmp_path / "ledger.txt"
    command = f"echo messages >> {ledger}"
    fake.script("ap", Reply(text="", tool_calls=[call("c1", "terminal", {"command": command})]))
    client = anthropic.Anthropic(base_url=server.base_url, api_key=ADMIN, max_retries=0)
    raw = client.messages.with_raw_response.create(
        model="ops", max_tokens=200, messages=[{"role": "user", "content": "Write."}]
    )
    session_id = raw.headers["x-session-id"]
    first = raw.parse()
    (request,) = (first.model_extra or {})["approval_requests"]
    assert (request["name"], json.loads(request["arguments"])) == ("terminal", {"command": command})
    assert first.stop_reason == "end_turn"
    url = f"{server.api}/sessions/{session_id}/approvals/{request['id']}"
    admin = {"Authorization": f"Bearer {ADMIN}"}
    assert httpx.post(url, json={"approve": True}, headers=admin).status_code == 200
    assert not ledger.exists()

    fake.script("ap", Reply(text="Written."))
    going = client.messages.create(
        model="ops",
        max_tokens=200,
        messages=[{"role": "user", "content": "Go on."}],
        extra_body={"session_id": session_id},
    )
    assert [block.type for block in going.content] == ["text"]
    assert going.content[0].text == "Written."  # type: ignore[union-attr]
    assert ledger.read_text() == "messages\n"


def test_the_llm_cli_shows_the_request_as_text(
    server: RunningServer, fake: FakeUpstream, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "extra-openai-models.yaml").write_text(
        f"- model_id: ops\n  model_name: ops\n  api_base: {server.api}\n  api_key_name: headend\n"
    )
    (tmp_path / "keys.json").write_text(json.dumps({"headend": ADMIN}))
    command = f"echo cli >> {tmp_path / 'ledger.txt'}"
    fake.script("ap", Reply(text="", tool_calls=[call("c1", "terminal", {"command": command})]))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLM_"))}
    done = subprocess.run(
        [sys.executable, "-m", "llm", "-m", "ops", "Write the ledger."],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "LLM_USER_PATH": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Waiting for your approval before running:\n- terminal ")
    assert not (tmp_path / "ledger.txt").exists()


def test_parallel_calls_each_get_their_request_and_their_own_answer(
    server: RunningServer, fake: FakeUpstream, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    fake.script(
        "ap",
        Reply(
            text="",
            tool_calls=[
                call("c1", "terminal", {"command": f"echo first >> {ledger}"}),
                call("c2", "terminal", {"command": f"echo second >> {ledger}"}),
            ],
        ),
    )
    first = sdk(server).responses.create(model="ops", input="Write both.")
    requests = [item for item in first.output if item.type == "mcp_approval_request"]
    assert len(requests) == 2
    by_command = {json.loads(r.arguments)["command"].split()[1]: r for r in requests}
    fake.script("ap", Reply(text="One of two."))
    sdk(server).responses.create(
        model="ops",
        previous_response_id=first.id,
        input=[
            *answer(by_command["first"].id, True),
            *answer(by_command["second"].id, False, "one is enough"),
        ],
    )
    assert ledger.read_text() == "first\n"
    told = {
        m["tool_call_id"]: m["content"]
        for m in fake.received("ap")[-1].body["messages"]
        if m.get("role") == "tool"
    }
    assert told["c1"].startswith("exit code 0")
    assert "one is enough" in told["c2"]


def test_an_answer_of_the_wrong_shape_is_a_4xx_and_leaves_the_request_waiting(
    server: RunningServer, fake: FakeUpstream, tmp_path: Path
) -> None:
    from tests.e2e.refusals import problem
    from tests.e2e.test_wrong_types import variants

    command = f"echo never >> {tmp_path / 'ledger.txt'}"
    fake.script("ap", Reply(text="", tool_calls=[call("c1", "terminal", {"command": command})]))
    chat = sdk(server).chat.completions.create(
        model="ops", messages=[{"role": "user", "content": "Write."}]
    )
    extra = chat.model_extra or {}
    (request,) = extra["approval_requests"]
    url = f"{server.api}/sessions/{extra['session_id']}/approvals/{request['id']}"
    admin = {"Authorization": f"Bearer {ADMIN}"}
    failures = []
    tried = 0
    for name, variant in variants({"approve": True, "reason": "looks fine"}):
        if "reason" in variant and variant["reason"] is None:
            continue  # no reason: a valid answer
        tried += 1
        found = problem(httpx.post(url, json=variant, headers=admin))
        if found is not None:
            failures.append(f"{name}: {found}")
    assert tried > 5
    assert not failures, failures
    listed = httpx.get(f"{server.api}/sessions/{extra['session_id']}/approvals", headers=admin)
    assert listed.json()["data"][0]["status"] == "pending"  # none of them answered it
