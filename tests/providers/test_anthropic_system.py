"""An upstream that takes one system prompt gets every system message merged into it, in
order, whatever stood between them."""

from __future__ import annotations

from headend.providers.anthropic_translate import to_anthropic


def test_system_messages_merge_in_order() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "system", "content": "The user is tired."},
            {"role": "user", "content": "How are you?"},
        ]
    }
    out = to_anthropic(body, "claude", 100)
    assert out["system"] == "You are terse.\n\nThe user is tired."
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
