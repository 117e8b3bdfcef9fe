"""Tools, JSON schemas, logprobs and logit_bias on the embedded model, through the openai SDK.

The bundled model is tiny, so these tests hold it to the grammar rather than to good sense:
a forced call is valid JSON naming an offered tool with arguments valid against its schema,
a schema-bound answer parses and validates, and the agent loop runs a real tool.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, cast

import jsonschema
import openai
import pytest
from openai.types.chat import (
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageParam,
    ChatCompletionMessageToolCallUnion,
    ChatCompletionStreamOptionsParam,
)

from tests.conftest import RunningServer

pytestmark = pytest.mark.e2e

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 40},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit", "days"],
    "additionalProperties": False,
}
TOOLS: list[ChatCompletionFunctionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "get_forecast",
            "description": "The weather forecast for a city",
            "parameters": WEATHER,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The time now in a time zone",
            "parameters": {
                "type": "object",
                "properties": {"zone": {"type": "string", "maxLength": 40}},
                "required": ["zone"],
            },
        },
    },
]
SCHEMAS = {tool["function"]["name"]: tool["function"]["parameters"] for tool in TOOLS}
ASK: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What will the weather be in Paris this week?"}
]


@pytest.fixture
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api, api_key="unused", max_retries=0)


def valid_call(call: ChatCompletionMessageToolCallUnion, names: set[str]) -> dict[str, Any]:
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name in names
    arguments: dict[str, Any] = json.loads(call.function.arguments)
    jsonschema.validate(arguments, SCHEMAS[call.function.name])
    return arguments


@pytest.mark.parametrize("model", ["smol", "smol-native"])
def test_a_required_call_names_an_offered_tool_with_valid_arguments(
    client: openai.OpenAI, model: str
) -> None:
    # smol's template knows no tools (they go in the system message); smol-native's renders
    # them itself.
    completion = client.chat.completions.create(
        model=model,
        messages=ASK,
        tools=TOOLS,
        tool_choice="required",
        temperature=0,
        max_tokens=120,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls
    for call in choice.message.tool_calls:
        valid_call(call, {"get_forecast", "get_time"})
    assert choice.message.content is None
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0


def test_a_named_tool_choice_calls_that_tool(client: openai.OpenAI) -> None:
    for name in ("get_time", "get_forecast"):
        completion = client.chat.completions.create(
            model="smol",
            messages=ASK,
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": name}},
            parallel_tool_calls=False,
            temperature=0.7,
            seed=3,
            max_tokens=120,
        )
        calls = completion.choices[0].message.tool_calls
        assert calls is not None
        assert len(calls) == 1
        valid_call(calls[0], {name})


def test_a_streamed_call_arrives_as_tool_call_deltas_without_its_markup(
    client: openai.OpenAI,
) -> None:
    stream = client.chat.completions.create(
        model="smol",
        messages=ASK,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=0,
        max_tokens=120,
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    content, finish = [], None
    for chunk in stream:
        for choice in chunk.choices:
            content.append(choice.delta.content or "")
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"name": "", "arguments": ""})
                call["name"] += (delta.function and delta.function.name) or ""
                call["arguments"] += (delta.function and delta.function.arguments) or ""
            finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert "<tool_call>" not in "".join(content)
    assert len(calls) == 1
    jsonschema.validate(json.loads(calls[0]["arguments"]), SCHEMAS[calls[0]["name"]])


def test_tool_choice_none_answers_in_words(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="smol", messages=ASK, tools=TOOLS, tool_choice="none", temperature=0, max_tokens=24
    )
    choice = completion.choices[0]
    assert choice.message.tool_calls is None
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")


@pytest.mark.parametrize("model", ["smol", "smol-native"])
def test_a_conversation_with_past_calls_and_results_goes_on(
    client: openai.OpenAI, model: str
) -> None:
    # The native template raises unless call arguments are objects and results are named.
    messages: list[ChatCompletionMessageParam] = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "get_forecast",
                        "arguments": '{"city": "Paris", "unit": "celsius", "days": 7}',
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny all week, 21 degrees."},
    ]
    completion = client.chat.completions.create(
        model=model, messages=messages, tools=TOOLS, temperature=0, max_tokens=40
    )
    choice = completion.choices[0]
    assert choice.finish_reason in ("stop", "length", "tool_calls")
    if choice.message.tool_calls:
        for call in choice.message.tool_calls:
            valid_call(call, {"get_forecast", "get_time"})
    else:
        assert choice.message.content


def test_an_agent_runs_its_tool_loop_on_the_embedded_model(server: RunningServer) -> None:
    # The packaged clock agent: current_time is called first, then the model answers from it.
    client = openai.OpenAI(base_url=server.api, api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="clock",
        messages=[{"role": "user", "content": "What time is it in Paris?"}],
        stream=True,
        # include_tool_progress is headend's own option, which the SDK does not know
        stream_options=cast(
            ChatCompletionStreamOptionsParam, {"include_usage": True, "include_tool_progress": True}
        ),
    )
    progress, text, finish = [], [], None
    for chunk in stream:
        if not chunk.choices and (chunk.model_extra or {}).get("type"):
            progress.append(chunk.model_extra)
        for choice in chunk.choices or []:
            text.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    started = [p for p in progress if p and p["type"] == "tool.started"]
    completed = [p for p in progress if p and p["type"] == "tool.completed"]
    assert [p["tool_name"] for p in started] == ["current_time"]
    assert completed
    assert completed[0]["success"] is True
    assert finish == "stop"
    # The answer comes from the tool's result: today's year is in it.
    assert str(datetime.datetime.now(datetime.UTC).year) in "".join(text)


CAT = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "colour": {"type": "string", "enum": ["black", "white", "ginger", "grey"]},
        "lives": {"type": "integer", "minimum": 1, "maximum": 9},
        "toys": {"type": "array", "items": {"type": "string", "maxLength": 16}, "maxItems": 3},
    },
    "required": ["name", "colour", "lives", "toys"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("stream", [False, True])
def test_a_json_schema_answer_parses_and_fits_the_schema(
    client: openai.OpenAI, stream: bool
) -> None:
    body: dict[str, Any] = {
        "model": "smol",
        "messages": [{"role": "user", "content": "Describe a cat."}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "cat", "strict": True, "schema": CAT},
        },
        "temperature": 0.8,
        "seed": 11,
        "max_tokens": 160,
    }
    if stream:
        chunks = client.chat.completions.create(**body, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        completion = client.chat.completions.create(**body)
        assert completion.choices[0].finish_reason == "stop"
        text = completion.choices[0].message.content or ""
    jsonschema.validate(json.loads(text), CAT)


def test_json_object_mode_answers_with_an_object(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="smol",
        messages=[{"role": "user", "content": "Give me the capital of France as JSON."}],
        response_format={"type": "json_object"},
        temperature=0,
        max_tokens=80,
    )
    assert completion.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(completion.choices[0].message.content or ""), dict)


def test_an_agent_pins_its_answers_schema(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="cat-card", messages=[{"role": "user", "content": "Tell me about Tom."}]
    )
    card = json.loads(completion.choices[0].message.content or "")
    assert set(card) == {"name", "age", "indoor"}
    assert isinstance(card["age"], int)
    assert isinstance(card["indoor"], bool)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="cat-card",
            messages=[{"role": "user", "content": "Tell me about Tom."}],
            response_format={"type": "json_object"},
        )
    assert caught.value.param == "response_format"


@pytest.mark.parametrize("stream", [False, True])
def test_logprobs_come_per_token_with_the_top_alternatives(
    client: openai.OpenAI, stream: bool
) -> None:
    body: dict[str, Any] = {
        "model": "smol",
        "messages": [{"role": "user", "content": "Say hello."}],
        "logprobs": True,
        "top_logprobs": 3,
        "temperature": 0,
        "max_tokens": 8,
    }
    if stream:
        text, tokens = "", []
        for chunk in client.chat.completions.create(**body, stream=True):
            for choice in chunk.choices:
                text += choice.delta.content or ""
                if choice.logprobs and choice.logprobs.content:
                    tokens += choice.logprobs.content
    else:
        choice = client.chat.completions.create(**body).choices[0]
        text = choice.message.content or ""
        assert choice.logprobs is not None
        assert choice.logprobs.content is not None
        tokens = choice.logprobs.content
    assert len(tokens) == 8
    assert "".join(t.token for t in tokens) == text
    for token in tokens:
        assert token.logprob <= 0
        assert bytes(token.bytes or []).decode() == token.token
        assert len(token.top_logprobs) == 3
        ranked = [alt.logprob for alt in token.top_logprobs]
        assert ranked == sorted(ranked, reverse=True)
        # Greedy decoding: the chosen token is the most likely one.
        assert token.logprob == pytest.approx(ranked[0])


def test_logit_bias_bans_and_forces_tokens(client: openai.OpenAI) -> None:
    def answer(bias: dict[str, int]) -> tuple[str, str]:
        choice = client.chat.completions.create(
            model="smol",
            messages=[{"role": "user", "content": "Say hello."}],
            logprobs=True,
            logit_bias=bias,
            temperature=0,
            max_tokens=4,
        ).choices[0]
        assert choice.logprobs is not None
        assert choice.logprobs.content
        return choice.message.content or "", choice.logprobs.content[0].token

    plain, first = answer({})
    banned, banned_first = answer({str(token_id(first)): -100})
    assert banned_first != first
    forced, _ = answer({str(token_id(" cat")): 100})
    assert forced == " cat" * 4
    assert plain != banned


def token_id(text: str) -> int:
    import llama_cpp
    from llama_cpp._internals import LlamaModel

    from headend.providers.llama_cpp import bundled_model_path

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = LlamaModel(path_model=str(bundled_model_path()), params=params, verbose=False)
    try:
        tokens = model.tokenize(text.encode(), False, False)
    finally:
        model.close()  # type: ignore[no-untyped-call]
    assert len(tokens) == 1, (text, tokens)
    return int(tokens[0])


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
        ({"tool_choice": "required"}, "tools"),
        ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "x",
                            "parameters": {"type": "object", "properties": {"a": {"$ref": "#/no"}}},
                        },
                    }
                ],
                "tool_choice": "required",
            },
            "tools[0].function.parameters",
        ),
        ({"logit_bias": {"999999": 5}}, "logit_bias"),
        ({"logit_bias": {"42": 500}}, "logit_bias"),
        (
            {
                "messages": [
                    {"role": "assistant", "tool_calls": [{"id": "c", "function": "oops"}]},
                    {"role": "user", "content": "hi"},
                ]
            },
            "messages[0].tool_calls[0].function",
        ),
    ],
)
def test_bad_tool_and_sampling_fields_are_400_naming_the_param(
    client: openai.OpenAI, extra: dict[str, Any], param: str
) -> None:
    body: dict[str, Any] = {"model": "smol", "messages": ASK, "max_tokens": 4, **extra}
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/chat/completions", body=body, cast_to=object)
    assert caught.value.param == param
    assert caught.value.type == "invalid_request_error"
