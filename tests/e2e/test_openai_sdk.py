"""The official openai SDK against a real headend running the embedded model."""

from __future__ import annotations

import json
import time

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam

from tests.conftest import RunningServer

pytestmark = pytest.mark.e2e

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the capital of France?"}
]


@pytest.fixture
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api, api_key="unused", max_retries=0)


@pytest.fixture
def aclient(server: RunningServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.api, api_key="unused", max_retries=0)


def test_non_streaming_completion_has_every_required_field(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="assistant", messages=QUESTION, max_tokens=12, seed=1
    )
    body = json.loads(raw.text)
    completion = raw.parse()
    assert isinstance(completion, ChatCompletion)
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "assistant"
    choice = body["choices"][0]
    # Nullable but required in the official spec: present, and null.
    assert choice["logprobs"] is None
    assert "logprobs" in choice
    assert choice["message"]["refusal"] is None
    assert "refusal" in choice["message"]
    assert choice["message"]["role"] == "assistant"
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert 0 < usage.completion_tokens <= 12
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert body["system_fingerprint"]


def test_max_tokens_cuts_the_answer_with_finish_reason_length(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        max_completion_tokens=3,
        temperature=0.7,
        seed=3,
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3


@pytest.mark.parametrize("stream", [False, True])
def test_the_overhead_header_leaves_out_the_embedded_model_s_compute(
    client: openai.OpenAI, stream: bool
) -> None:
    # 48 tokens of SmolLM on 2 cores take hundreds of ms; headend's own part, a few.
    began = time.perf_counter()
    raw = client.chat.completions.with_raw_response.create(
        model="assistant",
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        max_completion_tokens=48,
        temperature=0.7,
        seed=3,
        stream=stream,
    )
    if stream:
        for _ in raw.parse():
            pass
    elapsed_ms = (time.perf_counter() - began) * 1000
    overhead_ms = float(raw.headers["x-headend-overhead-ms"])
    assert overhead_ms < elapsed_ms / 4, (overhead_ms, elapsed_ms)


def test_streaming_role_first_then_deltas_then_finish_then_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="assistant",
            messages=QUESTION,
            max_tokens=10,
            seed=1,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(isinstance(chunk, ChatCompletionChunk) for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    *body, finish, usage = chunks
    assert finish.choices[0].finish_reason in ("stop", "length")
    assert all(chunk.choices[0].finish_reason is None for chunk in body)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in body)
    assert text.strip()
    assert usage.choices == []
    assert usage.usage is not None
    assert 0 < usage.usage.completion_tokens <= 10
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_streaming_without_include_usage_sends_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="assistant", messages=QUESTION, max_tokens=4, stream=True
        )
    )
    assert chunks[-1].choices
    assert chunks[-1].choices[0].finish_reason is not None
    assert all(chunk.usage is None for chunk in chunks)


def test_pinned_fields_win_over_the_request(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="pinned",
        messages=[{"role": "user", "content": "Tell me a very long story."}],
        max_tokens=200,
        temperature=2.0,
    )
    # The agent pins max_tokens to 6: the request's 200 is ignored.
    assert completion.usage is not None
    assert completion.usage.completion_tokens <= 6
    assert completion.choices[0].finish_reason == "length"


def test_text_parts_and_developer_role_are_accepted(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="assistant",
        messages=[
            {"role": "developer", "content": "Answer briefly."},
            {"role": "user", "content": [{"type": "text", "text": "What is 2 + 2?"}]},
        ],
        max_tokens=8,
    )
    assert completion.choices[0].message.content


async def test_async_client_non_streaming_and_streaming(aclient: openai.AsyncOpenAI) -> None:
    completion = await aclient.chat.completions.create(
        model="assistant", messages=QUESTION, max_tokens=5
    )
    assert completion.choices[0].message.content
    stream = await aclient.chat.completions.create(
        model="assistant", messages=QUESTION, max_tokens=5, stream=True
    )
    pieces = [chunk.choices[0].delta.content async for chunk in stream if chunk.choices]
    assert "".join(p or "" for p in pieces)


def test_a_plain_model_route_reaches_the_embedded_model(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="smol", messages=QUESTION, max_tokens=4)
    assert completion.model == "smol"
    assert completion.usage is not None
    assert completion.usage.completion_tokens <= 4
    chunks = list(
        client.chat.completions.create(model="smol", messages=QUESTION, max_tokens=4, stream=True)
    )
    assert all(chunk.model == "smol" for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="smol", messages=QUESTION, n=2)
    assert caught.value.param == "n"


def test_models_lists_every_agent_and_model_route(client: openai.OpenAI) -> None:
    models = client.models.list()
    assert sorted(model.id for model in models) == [
        "assistant",
        "cat-card",
        "clock",
        "pinned",
        "smol",
        "smol-native",
        "tiny",
    ]
    for model in models:
        assert model.object == "model"
        assert model.owned_by
        assert model.created > 0
    assert client.models.retrieve("pinned").id == "pinned"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("nobody")
    assert caught.value.code == "model_not_found"


def test_unknown_model_is_404_model_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-9", messages=QUESTION)
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 3}, "n"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": 7}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logit_bias": {"hello": 5}}, "logit_bias"),
        (
            {"tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice.function.name",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format.json_schema.schema",
        ),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].type",  # the embedded model reads text only
        ),
        ({"stream": "yes"}, "stream"),
    ],
)
def test_bad_fields_are_400_naming_the_param(
    client: openai.OpenAI, extra: dict[str, object], param: str
) -> None:
    body: dict[str, object] = {"model": "assistant", "messages": QUESTION, "max_tokens": 2, **extra}
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/chat/completions", body=body, cast_to=ChatCompletion)
    assert caught.value.status_code == 400
    assert caught.value.param == param
    assert caught.value.type == "invalid_request_error"


def test_a_long_session_is_trimmed_with_the_models_own_tokenizer(client: openai.OpenAI) -> None:
    # Each turn adds ~130 tokens; the model's window is 512. Untrimmed, the fifth turn
    # would be refused with context_length_exceeded.
    session_id = None
    for turn in range(7):
        extra: dict[str, object] = {"session_id": session_id} if session_id else {}
        reply = client.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": f"Note {turn}: " + "tea and biscuits " * 40}],
            extra_body=extra,
        )
        session_id = reply.model_extra["session_id"]  # type: ignore[index]
        assert reply.usage is not None
        assert reply.usage.prompt_tokens <= 512
