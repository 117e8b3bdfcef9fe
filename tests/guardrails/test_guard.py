"""One run's guard: input masked or blocked, the answer held back by its window so that a
blocked string never leaves in any chunk however the stream is cut, placeholders put back
across chunks, tools screened and counted, checks that fail closing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from headend.guardrails.checks import Blocked, Finding
from headend.guardrails.guard import Guard, Unavailable
from headend.guardrails.masking import Masker, Restorer
from headend.guardrails.rules import GUARDRAILS, GuardrailSpec

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"


class Watch:
    def __init__(self) -> None:
        self.checks: list[tuple[str, str, str]] = []
        self.blocks: list[Finding] = []

    def checked(self, check: str, action: str, outcome: str, seconds: float) -> None:
        assert seconds >= 0
        self.checks.append((check, action, outcome))

    async def blocked(self, finding: Finding) -> None:
        self.blocks.append(finding)


def specs(*entries: dict[str, Any]) -> list[GuardrailSpec]:
    return GUARDRAILS.validate_python(list(entries))


def guard(*entries: dict[str, Any], judge: Any = None, now: float | None = None) -> Guard:
    clock = (lambda: now) if now is not None else (lambda: datetime.now(UTC).timestamp())
    return Guard(specs(*entries), Watch(), judge, clock)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def splits(text: str) -> list[list[str]]:
    """Every way to cut ``text`` in two, and in three around each pair of points 5 apart."""
    cuts = [[text[:i], text[i:]] for i in range(1, len(text))]
    cuts += [[text[:i], text[i : i + 5], text[i + 5 :]] for i in range(1, len(text) - 5)]
    return cuts


# ---- masking


def test_a_value_keeps_its_placeholder_and_comes_back() -> None:
    masker = Masker()
    from headend.guardrails.detectors import find_pii

    text = f"Write to {EMAIL}, then again to {EMAIL}."
    masked = masker.mask(text, find_pii(text))
    assert masked == "Write to <EMAIL_1>, then again to <EMAIL_1>."
    assert masker.restore("Done: <EMAIL_1>. Not <EMAIL_2>.") == f"Done: {EMAIL}. Not <EMAIL_2>."
    assert masker.mask_known(f"the page says {EMAIL}") == "the page says <EMAIL_1>"


@pytest.mark.parametrize("pieces", splits("Sure, <EMAIL_1> and <PHONE_1> it is."))
def test_placeholders_come_back_however_the_stream_cuts_them(pieces: list[str]) -> None:
    masker = Masker()
    masker.placeholder("EMAIL", EMAIL)
    masker.placeholder("PHONE", "+44 20 7946 0958")
    restorer = Restorer(masker)
    out = "".join(restorer.feed(piece) for piece in pieces) + restorer.end()
    assert out == f"Sure, {EMAIL} and +44 20 7946 0958 it is."


# ---- input


def test_input_masked_for_the_model_and_the_agent_prompt_untouched() -> None:
    g = guard({"check": "pii", "action": "mask"})
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": f"My card is {CARD} and mail {EMAIL}"},
        {"role": "user", "content": [{"type": "text", "text": f"again {EMAIL}"}]},
    ]
    screened = run(g.screen_input(messages))
    assert screened[0]["content"] == "My card is <CARD_1> and mail <EMAIL_1>"
    assert screened[1]["content"] == [{"type": "text", "text": "again <EMAIL_1>"}]
    assert messages[0]["content"].endswith(EMAIL), "the caller's messages are not changed"
    assert ("pii", "mask", "hit") in g.watcher.checks  # type: ignore[attr-defined]


def test_input_blocked_with_the_check_message_and_the_hash_of_what_matched() -> None:
    g = guard({"check": "regex", "patterns": [r"(?i)\bproject nightjar\b"], "message": "Not that."})
    with pytest.raises(Blocked) as caught:
        run(g.screen_input([{"role": "user", "content": "Tell me about Project Nightjar."}]))
    assert caught.value.message == "Not that."
    finding = caught.value.finding
    assert (finding.check, finding.stage, len(finding.digest)) == ("regex", "input", 16)
    assert g.watcher.blocks == [finding]  # type: ignore[attr-defined]
    assert "Nightjar" not in repr(finding)


def test_log_action_lets_it_through_and_counts_a_hit() -> None:
    g = guard({"check": "secrets", "action": "log"})
    token = "ghp_" + "aB3dE5gH7jK9mN1p" + "Q3sT5vX7zA9cD1fG3hJ5"
    screened = run(g.screen_input([{"role": "user", "content": f"token {token}"}]))
    assert screened[0]["content"] == f"token {token}"
    assert g.watcher.checks == [("secrets", "log", "hit")]  # type: ignore[attr-defined]


def test_max_length_counts_each_message() -> None:
    g = guard({"check": "max_length", "max_chars": 10})
    run(g.screen_input([{"role": "user", "content": "0123456789"}] * 3))
    with pytest.raises(Blocked):
        run(g.screen_input([{"role": "user", "content": "0123456789!"}]))


def test_hours_refuse_politely_outside_them() -> None:
    monday_noon = datetime(2026, 12, 7, 12, 0, tzinfo=UTC).timestamp()
    sunday = datetime(2026, 12, 6, 12, 0, tzinfo=UTC).timestamp()
    entry = {"check": "hours", "timezone": "Europe/Paris", "open": ["mon-fri 09:00-18:00"]}
    run(guard(entry, now=monday_noon).screen_input([{"role": "user", "content": "hi"}]))
    with pytest.raises(Blocked) as caught:
        run(guard(entry, now=sunday).screen_input([{"role": "user", "content": "hi"}]))
    assert "mon-fri 09:00-18:00" in caught.value.message
    assert "Europe/Paris" in caught.value.message


def test_a_judge_blocks_on_yes_and_passes_on_no() -> None:
    asked: list[tuple[str, str, str]] = []

    def judge(answer: str) -> Any:
        async def ask(model: str, prompt: str, text: str) -> str:
            asked.append((model, prompt, text))
            return answer

        return ask

    entry = {"check": "judge", "model": "local", "prompt": "Medical advice? yes or no."}
    messages = [{"role": "user", "content": "old"}, {"role": "user", "content": "My rash?"}]
    with pytest.raises(Blocked):
        run(guard(entry, judge=judge("Yes, it is.")).screen_input(messages))
    assert asked == [("local", "Medical advice? yes or no.", "My rash?")]  # the last message
    run(guard(entry, judge=judge("no")).screen_input(messages))


def test_a_judge_that_fails_closes_unless_it_allows() -> None:
    async def down(model: str, prompt: str, text: str) -> str:
        raise ConnectionError("refused")

    async def slow(model: str, prompt: str, text: str) -> str:
        await asyncio.sleep(5)
        return "no"

    entry: dict[str, Any] = {"check": "judge", "model": "j", "prompt": "?"}
    messages = [{"role": "user", "content": "hello"}]
    with pytest.raises(Unavailable):
        run(guard(entry, judge=down).screen_input(messages))
    with pytest.raises(Unavailable):
        run(guard({**entry, "timeout": 0.05}, judge=slow).screen_input(messages))
    allowing = guard({**entry, "on_error": "allow"}, judge=down)
    assert run(allowing.screen_input(messages)) == messages
    assert allowing.watcher.checks == [("judge", "block", "error")]  # type: ignore[attr-defined]
    with pytest.raises(Blocked):  # on an answer or a tool, failing closed is a refusal
        run(guard({**entry, "apply_to": ["output"]}, judge=down).screen_text("output", "x"))


# ---- output windows

SECRET = "sk-ant-api03-" + "x" * 93 + "AA"


def stream(g: Guard, pieces: list[str]) -> tuple[str, Blocked | None]:
    """What leaves the window, and its block if any."""
    window = g.window()
    out = []
    try:
        for piece in pieces:
            out.append(window.feed(piece))
        out.append(run(window.end()))
    except Blocked as exc:
        return "".join(out), exc
    return "".join(out), None


@pytest.mark.parametrize("check", ["secrets", "regex"])
def test_a_blocked_string_never_leaves_in_any_chunk(check: str) -> None:
    entry: dict[str, Any] = {"check": check, "apply_to": ["output"]}
    needle = SECRET if check == "secrets" else "project nightjar"
    if check == "regex":
        entry["patterns"] = [r"(?i)\bproject nightjar\b"]
        entry["window"] = 32
    text = "A long enough preamble, said in many words before it. " * 3 + needle + " and after."
    for pieces in splits(text)[:: 7 if check == "secrets" else 1]:
        out, blocked = stream(guard(entry), pieces)
        assert blocked is not None
        assert text.startswith(out)
        assert len(out) <= text.index(needle), "only the text before it goes out"
    clean, blocked = stream(guard(entry), ["Nothing ", "to see ", "here."])
    assert (clean, blocked) == ("Nothing to see here.", None)


def test_a_stream_holds_back_only_what_could_still_match() -> None:
    entry = {"check": "regex", "patterns": ["nightjar"], "apply_to": ["output"]}
    window = guard(entry).window()
    assert window.feed("The night") == "The "  # "night" may be the start of it
    assert window.feed("s are long") == "nights are long"
    pii = guard({"check": "pii", "action": "mask", "apply_to": ["output"]}).window()
    assert pii.feed("Hello there") == "Hello "  # a word may be an address's first half
    assert pii.feed(", call +44 20") == "there, call "  # a number being written is held whole
    assert pii.feed(" 7946 0958 now") == "<PHONE_1> "
    assert run(pii.end()) == "now"


@pytest.mark.parametrize("pieces", splits(f"Mail {EMAIL} now."))
def test_output_masking_holds_across_chunks(pieces: list[str]) -> None:
    out, blocked = stream(guard({"check": "pii", "action": "mask", "apply_to": ["output"]}), pieces)
    assert blocked is None
    assert out == "Mail <EMAIL_1> now."


def test_input_values_come_back_before_the_output_checks() -> None:
    g = guard({"check": "pii", "action": "mask"}, {"check": "secrets", "apply_to": ["output"]})
    run(g.screen_input([{"role": "user", "content": f"I am {EMAIL}"}]))
    out, blocked = stream(g, ["Hello <EMA", "IL_1>, done."])
    assert (out, blocked) == (f"Hello {EMAIL}, done.", None)


def test_a_judge_on_output_holds_the_whole_answer() -> None:
    async def judge(model: str, prompt: str, text: str) -> str:
        return "yes" if "dose" in text else "no"

    entry = {"check": "judge", "model": "j", "prompt": "?", "apply_to": ["output"]}
    window = guard(entry, judge=judge).window()
    assert window.feed("Take a large ") == ""
    assert window.feed("dose.") == ""
    with pytest.raises(Blocked):
        run(window.end())


# ---- tools


def test_tool_arguments_get_the_users_values_back_and_are_screened() -> None:
    g = guard({"check": "pii", "action": "mask"}, {"check": "secrets", "apply_to": ["tool_input"]})
    run(g.screen_input([{"role": "user", "content": f"mail {EMAIL}"}]))
    arguments = g.restore({"to": "<EMAIL_1>", "cc": ["<EMAIL_1>"], "n": 2})
    assert arguments == {"to": EMAIL, "cc": [EMAIL], "n": 2}
    assert run(g.screen_arguments(arguments)) == arguments
    with pytest.raises(Blocked):
        run(g.screen_arguments({"body": SECRET}))


def test_a_tool_result_is_masked_with_the_runs_placeholders_then_screened() -> None:
    g = guard({"check": "pii", "action": "mask"}, {"check": "secrets", "apply_to": ["tool_output"]})
    run(g.screen_input([{"role": "user", "content": f"mail {EMAIL}"}]))
    assert run(g.screen_result(f"sent to {EMAIL}")) == "sent to <EMAIL_1>"
    with pytest.raises(Blocked):
        run(g.screen_result(f"the page holds {SECRET}"))


def test_tool_calls_are_counted_over_the_conversation() -> None:
    g = guard({"check": "tool_calls", "max": {"terminal": 2}})

    def call(n: int, name: str = "terminal") -> dict[str, Any]:
        return {"id": f"c{n}", "function": {"name": name, "arguments": "{}"}}

    history: list[dict[str, Any]] = [
        {"role": "assistant", "tool_calls": [call(1)]},
        {"role": "tool", "content": "x"},
    ]
    refused = g.over_limit(history, [call(2), call(3), call(4, "calculator"), call(5)])
    assert set(refused) == {"c3", "c5"}
    assert "2 times" in refused["c3"]


# ---- the spec


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"check": "pii", "on": ["input"]}, "apply_to, not on"),
        ({"check": "pii", True: ["input"]}, "apply_to, not on"),
        ({"check": "regex", "patterns": ["(unclosed"]}, "not a regular expression"),
        ({"check": "regex", "patterns": ["a*"]}, "matches the empty text"),
        ({"check": "judge", "model": "m", "prompt": "p", "action": "mask"}, "use block or log"),
        ({"check": "hours", "timezone": "Mars/Base", "open": ["mon 09:00-10:00"]}, "time zone"),
        ({"check": "hours", "open": ["weekdays 9-5"]}, "mon-fri 09:00-18:00"),
        ({"check": "hours", "open": ["mon 18:00-09:00"]}, "closes before it opens"),
        ({"check": "pii", "entities": ["EMAIL", "DNA"]}, "unknown entities DNA"),
        ({"check": "tool_calls", "max": {"x": 1}, "apply_to": ["input"]}, "tool_input only"),
        ({"check": "pii", "apply_to": ["everywhere"]}, "apply_to"),
        ({"check": "telepathy"}, "check"),
        ({"check": "max_length"}, "max_chars"),
    ],
)
def test_every_field_is_checked(entry: dict[Any, Any], says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        GUARDRAILS.validate_python([entry])
    assert says in str(caught.value)


def test_the_issue_example_reads_as_written() -> None:
    text = """
guardrails:
  - check: pii
    apply_to: [input]
    action: mask
  - check: secrets
    apply_to: [input, output, tool_output]
    action: block
  - check: regex
    patterns: ['(?i)\\bproject nightjar\\b']
    apply_to: [input]
    action: block
    message: I cannot talk about that project.
  - check: judge
    model: local
    prompt: Is this message asking for medical advice? Answer yes or no.
    apply_to: [input]
    action: block
  - check: max_length
    max_chars: 4000
  - check: hours
    timezone: Europe/Paris
    open: ["mon-fri 09:00-18:00"]
  - check: tool_calls
    max: {terminal: 5, http_fetch: 20}
"""
    found = GUARDRAILS.validate_python(yaml.safe_load(text)["guardrails"])
    assert [g.check for g in found] == [
        "pii",
        "secrets",
        "regex",
        "judge",
        "max_length",
        "hours",
        "tool_calls",
    ]
    assert all(g.action == "block" for g in found[1:])  # the default
    assert found[4].apply_to == ["input"]  # the default


def test_the_users_own_values_pass_the_output_checks_others_do_not() -> None:
    g = guard({"check": "pii", "action": "mask"}, {"check": "pii", "apply_to": ["output"]})
    run(g.screen_input([{"role": "user", "content": f"I am {EMAIL}"}]))
    out, blocked = stream(g, ["Hello <EMAIL_1>", ", welcome."])
    assert (out, blocked) == (f"Hello {EMAIL}, welcome.", None)
    out, blocked = stream(g, ["Write to bob", "@example.org instead."])
    assert blocked is not None
    assert "bob" not in out


def test_texts_beside_the_messages_are_screened_and_the_callers_left_as_they_were() -> None:
    g = guard({"check": "pii", "action": "mask"})
    tools: list[dict[str, Any]] = [
        {"type": "function", "function": {"name": "mail", "description": f"to {EMAIL}"}}
    ]
    beside: dict[str, Any] = {"model": "m", "tools": tools, "user": EMAIL, "note": {"x": [EMAIL]}}
    run(g.screen_input([{"role": "user", "content": "hi"}], beside))
    assert beside["tools"][0]["function"] == {"name": "mail", "description": "to <EMAIL_1>"}
    assert (beside["user"], beside["note"], beside["model"]) == (
        "<EMAIL_1>",
        {"x": ["<EMAIL_1>"]},
        "m",
    )
    assert tools[0]["function"]["description"] == f"to {EMAIL}", "the caller's are not changed"
    with pytest.raises(Blocked):
        run(guard({"check": "secrets"}).screen_input([], {"metadata": {"k": SECRET}}))
