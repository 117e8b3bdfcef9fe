"""Tool-call formats of the embedded model: reading calls back out of text as it streams,
choosing the format from the chat template, writing tools into the prompt, and grammars
that llama.cpp accepts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from headend.errors import InvalidRequest
from headend.providers.llama_grammar import bounded_integers, json_grammar
from headend.providers.llama_output import OutputReader
from headend.providers.llama_prompt import PromptStyle
from headend.providers.llama_tool_formats import (
    FORMATS,
    Hermes,
    Llama3,
    Mistral,
    ParsedCall,
    ToolSpec,
    native_format,
    tool_grammar,
)
from headend.providers.local_request import LocalCall, local_call

CITY = ToolSpec("weather", "", {"type": "object", "properties": {"city": {"type": "string"}}})
HERMES_CALL = '<tool_call>\n{"name": "weather", "arguments": {"city": "Oslo"}}\n</tool_call>'


ASKED = {"role": "user", "content": "Weather in Oslo?"}
PAST_CALL = {
    "role": "assistant",
    "tool_calls": [{"id": "c1", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}],
}


def call_after_a_tool(*before: dict[str, Any]) -> LocalCall:
    """A request whose conversation holds a weather call and its result."""
    result = {"role": "tool", "tool_call_id": "c1", "content": "Snow."}
    return local_call(
        {
            "messages": [*before, PAST_CALL, result],
            "tools": [{"type": "function", "function": CITY.function()}],
        }
    )


def read(reader: OutputReader, pieces: list[str]) -> str:
    return "".join(reader.feed(piece) for piece in pieces) + reader.finish()


def test_content_before_a_call_streams_and_the_call_is_read_at_the_end() -> None:
    reader = OutputReader(Hermes())
    released = [reader.feed(p) for p in ["Let me look. ", "<tool", "_call>\n{", '"name": "w']]
    assert released == ["Let me look. ", "", "", ""]
    assert reader.feed('eather", "arguments": {"city": "Oslo"}}\n</tool_call>') == ""
    assert reader.finish() == ""
    assert reader.calls == [ParsedCall("weather", '{"city": "Oslo"}')]


def test_text_that_only_looked_like_a_call_is_released() -> None:
    reader = OutputReader(Hermes())
    assert reader.feed("a <tool") == "a "
    assert reader.feed("box>") == "<toolbox>"
    assert read(OutputReader(Hermes()), ["<tool_call>\n{not json", "}\n</tool_call>"]) == (
        "<tool_call>\n{not json}\n</tool_call>"
    )


def test_repeated_calls_count_once_and_a_call_cut_short_is_dropped() -> None:
    reader = OutputReader(Hermes())
    text = f"{HERMES_CALL}\n{HERMES_CALL}\n<tool_call>\n" + '{"name": "wea'
    assert read(reader, [text]) == ""
    assert reader.calls == [ParsedCall("weather", '{"city": "Oslo"}')]


def test_llama3_and_mistral_calls_are_read() -> None:
    llama = OutputReader(Llama3())
    assert read(llama, [' {"name": "weather", ', '"parameters": {"city": "Rome"}}']) == ""
    assert llama.calls == [ParsedCall("weather", '{"city": "Rome"}')]
    assert read(OutputReader(Llama3()), ["Hello ", "there"]) == "Hello there"
    mistral = OutputReader(Mistral())
    calls = '[TOOL_CALLS][{"name": "weather", "arguments": {"city": "Lima"}}]'
    assert read(mistral, [calls[:5], calls[5:]]) == ""
    assert mistral.calls == [ParsedCall("weather", '{"city": "Lima"}')]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{% for t in tools %}{{ t }}{% endfor %}<tool_call>", "hermes"),
        ("{% if tools %}[AVAILABLE_TOOLS]{% endif %}[TOOL_CALLS]", "mistral"),
        ("{% if tools %}{% endif %}<|python_tag|>", "llama3"),
        ("<|im_start|>{{ message['content'] }}", None),
    ],
)
def test_the_template_says_which_format_the_model_writes(
    template: str, expected: str | None
) -> None:
    found = native_format(template)
    assert (found.name if found else None) == expected


def test_templates_without_tools_get_them_in_the_system_message() -> None:
    call = call_after_a_tool({"role": "system", "content": "Be kind."}, ASKED)
    given = PromptStyle("{{ messages }}").input(call)
    assert given.tools is None
    assert given.format is not None
    assert given.format.name == "hermes"
    system, _user, assistant, result = given.messages
    assert system["content"].startswith("Be kind.\n\n")
    assert '"name": "weather"' in system["content"]
    assert assistant["content"] == HERMES_CALL
    assert result == {"role": "user", "content": "weather returned:\nSnow."}
    # tool_choice none: the model is not told about tools at all.
    call.tool_choice = type(call.tool_choice)("none")
    assert PromptStyle("{{ messages }}").input(call).format is None


def test_templates_with_tools_get_them_as_they_expect() -> None:
    call = call_after_a_tool()
    given = PromptStyle("{% if tools %}<tool_call>{% endif %}").input(call)
    assert given.tools == [{"type": "function", "function": CITY.function()}]
    assert given.messages[0]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}
    assert given.messages[1]["name"] == "weather"


@pytest.fixture(scope="module")
def vocab() -> Iterator[Any]:
    import llama_cpp
    from llama_cpp._internals import LlamaModel

    from headend.providers.llama_cpp import bundled_model_path

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = LlamaModel(path_model=str(bundled_model_path()), params=params, verbose=False)
    yield model
    model.close()  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
@pytest.mark.parametrize("forced", [True, False])
def test_llama_cpp_accepts_every_formats_grammar(vocab: Any, fmt: Any, forced: bool) -> None:
    from headend.providers.base import SamplingParams
    from headend.providers.llama_sampling import sampler_for

    grammar = tool_grammar(fmt, [CITY], parallel=True, forced=forced, answer={"type": "object"})
    sampler_for(SamplingParams(), vocab, grammar=grammar).close()
    lazy = tool_grammar(fmt, [CITY], parallel=False, forced=forced)
    assert bool(lazy.triggers) is not forced
    sampler_for(SamplingParams(), vocab, grammar=lazy).close()


def test_small_integer_ranges_become_enums_and_bad_schemas_are_400() -> None:
    schema = {"type": "integer", "minimum": 1, "exclusiveMaximum": 4}
    assert bounded_integers({"items": schema})["items"]["enum"] == [1, 2, 3]
    assert "enum" not in bounded_integers({"type": "integer", "minimum": 0})
    assert "enum" not in bounded_integers({"type": "integer", "minimum": 0, "maximum": 10**6})
    with pytest.raises(InvalidRequest) as caught:
        json_grammar({"$ref": "#/definitions/missing"}, "response_format")
    assert caught.value.param == "response_format"
    assert json.loads(json.dumps(json_grammar({"type": "object"}, "x").text))
