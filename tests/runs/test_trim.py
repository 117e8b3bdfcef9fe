"""Trimming stored history to a context window."""

from __future__ import annotations

from typing import Any

from headend.runs.session_turns import counting_with, estimate_tokens, new_messages, trim


def turn(n: int, words: int = 50) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": f"question {n} " + "x " * words},
        {"role": "assistant", "content": f"answer {n} " + "y " * words},
    ]


def test_everything_stays_when_it_fits() -> None:
    head = [{"role": "system", "content": "Be brief."}]
    history = turn(1) + turn(2)
    added = [{"role": "user", "content": "new"}]
    assert trim(head, history, added, 10_000) == [*head, *history, *added]


def test_oldest_turns_go_first_and_whole() -> None:
    head = [{"role": "system", "content": "Be brief."}]
    tool_round: list[dict[str, Any]] = [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "t"}]},
        {"role": "tool", "tool_call_id": "t", "content": "r"},
    ]
    history = [*turn(1), *tool_round, *turn(2), *turn(3)]
    added = [{"role": "user", "content": "newest"}]
    budget = sum(map(estimate_tokens, [*head, *turn(3), *added])) + 5
    kept = trim(head, history, added, budget)
    assert kept == [*head, *turn(3), *added]


def test_the_system_prompt_and_the_newest_message_always_stay() -> None:
    head = [{"role": "system", "content": "Be brief."}]
    added = [{"role": "user", "content": "z " * 500}]
    assert trim(head, turn(1), added, 10) == [*head, *added]


def test_new_messages_drop_a_resent_history() -> None:
    history = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    resent = [{"role": "system", "content": "s"}, *history, {"role": "user", "content": "c"}]
    assert new_messages(history, resent) == [{"role": "user", "content": "c"}]
    assert new_messages(history, [{"role": "user", "content": "c"}]) == [
        {"role": "user", "content": "c"}
    ]
    edited = [
        {"role": "user", "content": "A"},
        {"role": "assistant", "content": "B"},
        {"role": "user", "content": "c"},
    ]
    assert new_messages(history, edited) == [{"role": "user", "content": "c"}]


def test_a_models_tokenizer_counts_when_there_is_one() -> None:
    words = counting_with(lambda text: len(text.split()))
    assert words({"role": "user", "content": "one two three"}) == 3 + 4
    calls = {"role": "assistant", "content": None, "tool_calls": [{"id": "a b"}]}
    assert words(calls) > 4
    history = [*turn(1, words=10), *turn(2, words=10)]
    added = [{"role": "user", "content": "new"}]
    budget = words(added[0]) + sum(words(m) for m in turn(2, words=10))
    assert trim([], history, added, budget, words) == [*turn(2, words=10), *added]
