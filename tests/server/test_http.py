"""Request bodies: JSON nesting is bounded, and the bound is exact."""

from __future__ import annotations

import pytest

from headend.errors import InvalidRequest
from headend.server.json_bodies import MAX_DEPTH, decode_json


def nest(levels: int) -> str:
    return "[" * levels + "1" + "]" * levels


def test_the_limit_itself_passes() -> None:
    body = '{"model": "m", "metadata": ' + nest(MAX_DEPTH - 1) + "}"
    assert decode_json(body.encode())["model"] == "m"


def test_one_level_more_is_refused_naming_the_field() -> None:
    body = '{"model": "m", "messages": [{"content": ' + nest(MAX_DEPTH - 2) + "}]}"
    with pytest.raises(InvalidRequest) as refused:
        decode_json(body.encode())
    assert refused.value.param == "messages"
    assert refused.value.code == "json_too_deep"
    assert "at 'messages[0].content[0]...'" in refused.value.message


def test_brackets_inside_strings_are_not_nesting() -> None:
    text = "[{" * 500
    body = '{"model": "m", "messages": [{"role": "user", "content": "' + text + '"}]}'
    assert decode_json(body.encode())["messages"][0]["content"] == text


def test_a_deep_array_body_has_no_param() -> None:
    with pytest.raises(InvalidRequest) as refused:
        decode_json(nest(1000).encode())
    assert refused.value.param is None
