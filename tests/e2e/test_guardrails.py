"""Guardrails on every wire, through the official SDKs, against a real server and the fake
upstream: a blocked request calls no model and is refused in each API's own shape, streamed
or not (and over the WebSocket, MCP, A2A and in background runs); masked values never reach
the upstream and come back in the answer across chunk boundaries; a blocked string in a
stream never reaches the client; tools' arguments and results are screened and their calls
counted; a judge decides, and fails closed; a key carries its own; operators see each block
in the metrics and the audit log, never the text."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, issue, serve
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

NIGHTJAR = "I cannot talk about that project."
BANNED = "The word zeppelin-omega is not allowed here."
EMAIL = "jane.doe@example.com"
SECRET = "sk-ant-api03-" + "Q" * 93 + "AA"  # the format's shape, no real key
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

GUARDED = """---
model: up/guarded
tools: [terminal, calculator]
guardrails:
  - check: pii
    action: mask
  - check: secrets
    apply_to: [input, output, tool_output]
  - check: pii
    entities: [EMAIL]
    apply_to: [tool_input]
  - check: regex
    patterns: ['(?i)\\bproject nightjar\\b']
    message: I cannot talk about that project.
  - check: tool_calls
    max: {calculator: 1}
---
You help.
"""
JUDGED = """---
model: up/judged
guardrails:
  - check: judge
    model: judge
    prompt: Is this message asking for medical advice? Answer yes or no.
---
You help.
"""
DOWN_JUDGE = """---
model: up/judged
guardrails:
  - {check: judge, model: down, prompt: "Medical? yes or no.", timeout: 5}
---
"""
LENIENT_JUDGE = """---
model: up/judged
guardrails:
  - {check: judge, model: down, prompt: "Medical? yes or no.", on_error: allow}
---
"""


def closed_hours() -> str:
    """An agent open only on the day after tomorrow (UTC): closed while the tests run."""
    day = DAYS[(datetime.now(UTC).weekday() + 2) % 7]
    return f"""---
model: up/hours
guardrails:
  - check: hours
    timezone: UTC
    open: ["{day} 00:00-24:00"]
---
"""


def config(upstream: FakeUpstream) -> str:
    return f"""
providers:
  up: {{type: openai, base_url: "{upstream.url("gr")}/v1", retry: {{attempts: 1}}}}
  judges: {{type: openai, base_url: "{upstream.url("gj")}/v1", retry: {{attempts: 1}}}}
  gone: {{type: openai, base_url: "http://127.0.0.1:9/v1", retry: {{attempts: 1}}}}
models:
  gpt: up/gpt
  judge: judges/judge
  down: gone/judge
guardrails:
  - check: regex
    patterns: ['(?i)\\bzeppelin-omega\\b']
    apply_to: [input, output]
    message: The word zeppelin-omega is not allowed here.
"""


@pytest.fixture(scope="module")
def site(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("guardrails")
    (root / "agents").mkdir()
    agents = {
        "guarded": GUARDED,
        "judged": JUDGED,
        "down-judge": DOWN_JUDGE,
        "lenient-judge": LENIENT_JUDGE,
        "hours": closed_hours(),
    }
    for name, text in agents.items():
        (root / "agents" / f"{name}.md").write_text(text)
    (root / "headend.yaml").write_text(config(upstream))
    return root


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[RunningServer]:
    running = serve(site)
    yield running
    stop_server(running)


def oai(server: RunningServer, key: str = ADMIN) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api, api_key=key, max_retries=0)


def claude(server: RunningServer, key: str = ADMIN) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key=key, max_retries=0)


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def refusal_of(response: Any) -> Any:
    """A refused response's refusal: a message with the refusal part, then one with the same
    words as text, for the clients that show only text."""
    refused, said = response.output
    (refusal,) = refused.content
    assert refusal.type == "refusal"
    assert [part.type for part in said.content] == ["output_text"]
    assert response.output_text == refusal.refusal
    return refusal.refusal


def sent_texts(fake: FakeUpstream, prefix: str = "gr") -> str:
    """Everything the upstream was sent, as one JSON text."""
    return json.dumps([r.body for r in fake.received(prefix)])


# ---- a blocked request: each API's refusal, streamed and not, and no model call


def test_chat_completions_refuse_with_message_refusal(
    server: RunningServer, fake: FakeUpstream
) -> None:
    client = oai(server)
    answer = client.chat.completions.create(
        model="gpt", messages=user("Tell me about zeppelin-omega.")
    )
    choice = answer.choices[0]
    # said in content too, for the clients that show only content
    assert (choice.message.refusal, choice.message.content) == (BANNED, BANNED)
    assert choice.finish_reason == "content_filter"

    chunks = list(
        client.chat.completions.create(
            model="gpt", messages=user("zeppelin-omega again"), stream=True
        )
    )
    refusal = "".join(c.choices[0].delta.refusal or "" for c in chunks if c.choices)
    assert refusal == BANNED
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "content_filter"

    with client.chat.completions.stream(model="gpt", messages=user("zeppelin-omega!")) as s:
        events = [event.type for event in s]  # read to the end without an exception
        # The helper's parsed result is the SDK's own signal for content_filter: it raises,
        # holding the completion, as it does for OpenAI's own filter.
        with pytest.raises(openai.ContentFilterFinishReasonError) as filtered:
            s.get_final_completion()
    assert "refusal.done" in events
    assert "content.done" in events
    completion = filtered.value.completion
    assert completion is not None
    assert completion.choices[0].message.refusal == BANNED
    assert fake.received("gr") == [], "a blocked request calls no model"


def test_responses_refuse_with_a_refusal_part_and_status_incomplete(
    server: RunningServer, fake: FakeUpstream
) -> None:
    client = oai(server)
    response = client.responses.create(model="gpt", input="What is zeppelin-omega?")
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "content_filter"
    assert refusal_of(response) == BANNED

    with client.responses.stream(model="gpt", input="zeppelin-omega, please") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert [k for k in kinds if k.startswith("response.refusal")] == [
        "response.refusal.delta",
        "response.refusal.done",
    ]
    assert kinds[-1] == "response.completed"
    assert final.status == "incomplete"
    assert refusal_of(final) == BANNED
    assert fake.received("gr") == []


def test_messages_refuse_with_stop_reason_refusal(
    server: RunningServer, fake: FakeUpstream
) -> None:
    client = claude(server)
    message = client.messages.create(
        model="gpt", max_tokens=50, messages=user("zeppelin-omega facts")
    )
    assert message.stop_reason == "refusal"
    assert [b.text for b in message.content if b.type == "text"] == [BANNED]
    assert message.stop_details is not None
    assert message.stop_details.explanation == BANNED

    with client.messages.stream(
        model="gpt", max_tokens=50, messages=user("zeppelin-omega facts")
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert (text, final.stop_reason) == (BANNED, "refusal")
    assert fake.received("gr") == []


def test_completions_refuse_with_finish_reason_content_filter(
    server: RunningServer, fake: FakeUpstream
) -> None:
    client = oai(server)
    answer = client.completions.create(model="gpt", prompt="zeppelin-omega is")
    assert (answer.choices[0].text, answer.choices[0].finish_reason) == (BANNED, "content_filter")
    chunks = list(client.completions.create(model="gpt", prompt="zeppelin-omega", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == BANNED
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "content_filter"
    assert fake.received("gr") == []


def test_an_agents_own_check_refuses_in_its_words(
    server: RunningServer, fake: FakeUpstream
) -> None:
    answer = oai(server).chat.completions.create(
        model="guarded", messages=user("Status of Project Nightjar?")
    )
    assert answer.choices[0].message.refusal == NIGHTJAR
    assert fake.received("gr") == []


def test_the_websocket_mcp_a2a_and_background_runs_refuse_too(
    server: RunningServer, fake: FakeUpstream
) -> None:
    client = oai(server)
    with client.responses.connect() as connection:
        connection.response.create(model="guarded", input=user("project nightjar?"), store=False)
        for event in connection:
            if event.type == "response.completed":
                done = event.response
                break
    assert done.status == "incomplete"
    assert refusal_of(done) == NIGHTJAR

    queued = client.responses.create(model="guarded", input="project nightjar?", background=True)
    deadline = time.monotonic() + 30
    while queued.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.1)
        queued = client.responses.retrieve(queued.id)
    assert queued.status == "incomplete"
    assert refusal_of(queued) == NIGHTJAR

    send = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "message/send",
        "params": {
            "message": {
                "role": "user",
                "messageId": "m1",
                "parts": [{"kind": "text", "text": "project nightjar?"}],
            }
        },
    }
    admin = {"Authorization": f"Bearer {ADMIN}"}
    task = httpx.post(server.base_url + "/a2a/guarded", json=send, headers=admin).json()["result"]
    said = [p["text"] for p in task["status"]["message"]["parts"]]
    assert said == [NIGHTJAR]

    async def mcp_call() -> Any:
        from mcp.client.session import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        async with (
            httpx2.AsyncClient(headers=admin, timeout=30) as http,
            streamable_http_client(server.base_url + "/mcp", http_client=http) as (r, w),
            ClientSession(r, w) as session,
        ):
            await session.initialize()
            return await session.call_tool("guarded", {"message": "project nightjar?"})

    result = asyncio.run(mcp_call())
    assert [c.text for c in result.content] == [NIGHTJAR]
    assert fake.received("gr") == []


# ---- masking: placeholders upstream, the user's values back, across chunks


def test_masked_values_never_reach_the_upstream_and_come_back_in_the_answer(
    server: RunningServer, fake: FakeUpstream
) -> None:
    said = "Sure, I will write to <EMAIL_1> today."
    pieces = ["Sure, I will write to <EM", "AIL", "_1> to", "day."]
    fake.script(
        "gr", Reply(text=said), Reply(text=said, pieces=pieces), Reply(text=said, pieces=pieces)
    )
    client = oai(server)
    question = user(f"Email me at {EMAIL} please, or call +44 20 7946 0958.")
    answer = client.chat.completions.create(model="guarded", messages=question)
    assert answer.choices[0].message.content == f"Sure, I will write to {EMAIL} today."

    chunks = client.chat.completions.create(model="guarded", messages=question, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"Sure, I will write to {EMAIL} today."

    with claude(server).messages.stream(model="guarded", max_tokens=50, messages=question) as s:
        assert "".join(s.text_stream) == f"Sure, I will write to {EMAIL} today."

    sent = sent_texts(fake)
    assert EMAIL not in sent
    assert "7946" not in sent
    assert "<EMAIL_1>" in sent
    assert "<PHONE_1>" in sent


def test_a_session_keeps_the_users_values_not_placeholders(
    server: RunningServer, fake: FakeUpstream
) -> None:
    fake.script("gr", Reply(text="Noted, <EMAIL_1>."), Reply(text="Yes."))
    client = oai(server)
    first = client.chat.completions.create(model="guarded", messages=user(f"I am {EMAIL}."))
    session = first.model_extra["session_id"]  # type: ignore[index]
    client.chat.completions.create(
        model="guarded", messages=user("Do you remember me?"), extra_body={"session_id": session}
    )
    kept = httpx.get(
        f"{server.api}/sessions/{session}", headers={"Authorization": f"Bearer {ADMIN}"}
    ).json()
    texts = json.dumps(kept)
    assert f"Noted, {EMAIL}." in texts
    assert "<EMAIL_1>" not in texts
    second = fake.received("gr")[1].body["messages"]
    assert EMAIL not in json.dumps(second), "history is masked again for the model"


# ---- output: a blocked string never reaches the client


@pytest.mark.parametrize("wire", ["chat", "responses", "messages"])
def test_a_secret_in_a_streamed_answer_is_withheld_in_every_chunk(
    server: RunningServer, fake: FakeUpstream, wire: str
) -> None:
    answer = f"Here is what I found: {SECRET} — keep it safe."
    cut = answer.index(SECRET) + 9
    pieces = [answer[:10], answer[10:cut], answer[cut : cut + 30], answer[cut + 30 :]]
    fake.script("gr", Reply(text=answer, pieces=pieces))
    client, question = oai(server), user("What is in the vault?")
    if wire == "chat":
        chunks = list(
            client.chat.completions.create(model="guarded", messages=question, stream=True)
        )
        seen = json.dumps([c.model_dump(warnings=False) for c in chunks])
        refusal = "".join(c.choices[0].delta.refusal or "" for c in chunks if c.choices)
        assert chunks[-1].choices[0].finish_reason == "content_filter"
    elif wire == "responses":
        with client.responses.stream(model="guarded", input=question) as stream:
            events: list[Any] = list(stream)
        seen = json.dumps([e.model_dump(warnings=False) for e in events])
        refusal = "".join(e.delta for e in events if e.type == "response.refusal.delta")
        assert events[-1].response.incomplete_details.reason == "content_filter"
    else:
        with claude(server).messages.stream(model="guarded", max_tokens=9, messages=question) as s:
            said: list[Any] = list(s)
            final = s.get_final_message()
        seen = json.dumps([e.model_dump(warnings=False) for e in said])
        refusal = (final.stop_details.explanation if final.stop_details else "") or ""
        assert final.stop_reason == "refusal"
    assert "sk-ant" not in seen
    assert SECRET[20:40] not in seen
    assert refusal == "The answer was withheld: it did not pass a guardrail (secrets)."


def test_an_answer_not_streamed_is_screened_whole(
    server: RunningServer, fake: FakeUpstream
) -> None:
    fake.script("gr", Reply(text="The forbidden word is zeppelin-omega."))
    answer = oai(server).chat.completions.create(model="gpt", messages=user("Which word?"))
    assert answer.choices[0].message.refusal == BANNED
    assert answer.choices[0].message.content == BANNED  # the refusal, not the answer
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 7  # spent, and kept


# ---- tools


def tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, str]:
    return {"id": call_id, "name": name, "arguments": json.dumps(arguments)}


def tool_results(fake: FakeUpstream) -> dict[str, str]:
    """The tool results the model was sent, by call id."""
    return {
        m["tool_call_id"]: m["content"]
        for r in fake.received("gr")
        for m in r.body["messages"]
        if m.get("role") == "tool"
    }


def test_a_tools_result_holding_a_secret_is_withheld_from_the_model(
    server: RunningServer, fake: FakeUpstream
) -> None:
    fake.script(
        "gr",
        Reply(text="", tool_calls=[tool_call("c1", "terminal", {"command": f"echo {SECRET}"})]),
        Reply(text="The page held nothing I may show."),
    )
    answer = oai(server).chat.completions.create(model="guarded", messages=user("Run it."))
    assert answer.choices[0].message.content == "The page held nothing I may show."
    results = tool_results(fake)
    assert results["c1"] == (
        "Error: the result of terminal was withheld: it did not pass a guardrail (secrets)."
    )
    assert SECRET not in json.dumps(results)


def test_a_tool_call_gets_the_users_values_and_its_arguments_are_checked(
    server: RunningServer, fake: FakeUpstream, tmp_path: Path
) -> None:
    fake.script(
        "gr",
        Reply(text="", tool_calls=[tool_call("c1", "terminal", {"command": "echo <EMAIL_1>"})]),
        Reply(text="I may not."),
    )
    oai(server).chat.completions.create(model="guarded", messages=user(f"Echo {EMAIL}."))
    result = tool_results(fake)["c1"]
    assert result == ("Error: this call did not run: its arguments did not pass a guardrail (pii).")
    assert EMAIL not in sent_texts(fake)


def test_tool_calls_past_their_limit_do_not_run(server: RunningServer, fake: FakeUpstream) -> None:
    fake.script(
        "gr",
        Reply(text="", tool_calls=[tool_call("c1", "calculator", {"expression": "2+2"})]),
        Reply(text="", tool_calls=[tool_call("c2", "calculator", {"expression": "3+3"})]),
        Reply(text="Done."),
    )
    oai(server).chat.completions.create(model="guarded", messages=user("Add twice."))
    results = tool_results(fake)
    assert results["c1"] == "4"
    assert "limit is reached" in results["c2"]


# ---- judges, hours, keys


def test_a_judge_blocks_on_yes_and_lets_no_through(
    server: RunningServer, fake: FakeUpstream
) -> None:
    fake.script("gj", Reply(text="Yes."), Reply(text="No"))
    fake.script("gr", Reply(text="Paris."))
    client = oai(server)
    blocked = client.chat.completions.create(model="judged", messages=user("What dose of X?"))
    assert blocked.choices[0].finish_reason == "content_filter"
    passed = client.chat.completions.create(model="judged", messages=user("Capital of France?"))
    assert passed.choices[0].message.content == "Paris."
    asked = [r.body for r in fake.received("gj")]
    assert [m["content"] for m in asked[0]["messages"]][-1] == "What dose of X?"
    assert len(fake.received("gr")) == 1


def test_a_judge_that_is_down_fails_closed_unless_it_allows(
    server: RunningServer, fake: FakeUpstream
) -> None:
    client = oai(server)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="down-judge", messages=user("Hello?"))
    assert caught.value.status_code == 503
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "guardrail_unavailable"
    assert fake.received("gr") == []
    fake.script("gr", Reply(text="Hi."))
    answer = client.chat.completions.create(model="lenient-judge", messages=user("Hello?"))
    assert answer.choices[0].message.content == "Hi."


def test_outside_opening_hours_a_polite_refusal(server: RunningServer, fake: FakeUpstream) -> None:
    answer = oai(server).chat.completions.create(model="hours", messages=user("Open?"))
    refusal = answer.choices[0].message.refusal or ""
    assert refusal.startswith("We are closed now. Opening hours (UTC):")
    assert fake.received("gr") == []


def test_a_key_carries_guardrails_that_always_apply(
    server: RunningServer, fake: FakeUpstream
) -> None:
    rules = [
        {"check": "regex", "patterns": ["(?i)\\bquartz-lantern\\b"], "message": "Key says no."}
    ]
    made = issue(server, name="guarded-key", scopes=["chat"], guardrails=rules)
    assert made["guardrails"] == [
        {"check": "regex", "patterns": ["(?i)\\bquartz-lantern\\b"], "message": "Key says no."}
    ]
    answer = oai(server, str(made["secret"])).chat.completions.create(
        model="gpt", messages=user("quartz-lantern?")
    )
    assert answer.choices[0].message.refusal == "Key says no."
    fake.script("gr", Reply(text="A lantern."))
    other = oai(server).chat.completions.create(model="gpt", messages=user("quartz-lantern?"))
    assert other.choices[0].message.content == "A lantern."
    bad = httpx.post(
        server.base_url + "/admin/keys",
        json={"name": "bad", "guardrails": [{"check": "regex", "patterns": ["("]}]},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "guardrails"


# ---- what operators see


def test_blocks_are_counted_and_audited_without_the_text(
    server: RunningServer, fake: FakeUpstream
) -> None:
    oai(server).chat.completions.create(model="guarded", messages=user("project NIGHTJAR now"))
    admin = {"Authorization": f"Bearer {ADMIN}"}
    audit = httpx.get(
        server.base_url + "/admin/audit",
        params={"action": "guardrail.block", "target": "guarded"},
        headers=admin,
    ).json()["data"]
    entry = audit[0]
    assert (entry["detail"]["check"], entry["detail"]["stage"]) == ("regex", "input")
    assert len(entry["detail"]["sha256"]) == 16
    assert "nightjar" not in json.dumps(audit).lower()
    metrics = httpx.get(server.base_url + "/metrics", headers=admin).text
    assert 'headend_guardrail_checks_total{action="block",check="regex",outcome="hit"}' in metrics
    assert "headend_guardrail_check_duration_seconds_bucket" in metrics


def test_the_console_lists_each_agents_guardrails(server: RunningServer) -> None:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    found = httpx.get(server.base_url + "/console/api/agents", headers=admin).json()
    assert found["guardrails"] == ["regex: block on input, output"]
    (guarded,) = [agent for agent in found["data"] if agent["id"] == "guarded"]
    assert guarded["guardrails"] == [
        "pii: mask on input",
        "secrets: block on input, output, tool_output",
        "pii: block on tool_input",
        "regex: block on input",
        "tool_calls: at most calculator 1 per conversation",
    ]
