"""What the SDKs cannot send: broken JSON, huge bodies, raw SSE bytes, disconnects."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from tests.conftest import RunningServer

pytestmark = pytest.mark.e2e

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def _error(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, object] = body["error"]
    return error


def test_invalid_json_is_400_in_the_envelope(server: RunningServer) -> None:
    response = httpx.post(server.api + "/chat/completions", content=b'{"model": "assistant",')
    assert response.status_code == 400
    assert _error(response)["type"] == "invalid_request_error"


def test_body_that_is_not_an_object_is_400(server: RunningServer) -> None:
    response = httpx.post(server.api + "/chat/completions", json=[1, 2, 3])
    assert response.status_code == 400
    _error(response)


def test_body_over_the_limit_is_413(server: RunningServer) -> None:
    big = "x" * (10 * 1024 * 1024 + 1)
    response = httpx.post(
        server.api + "/chat/completions",
        json={"model": "assistant", "messages": [{"role": "user", "content": big}]},
    )
    assert response.status_code == 413
    assert _error(response)["code"] == "request_too_large"


def test_unknown_fields_are_ignored(server: RunningServer) -> None:
    response = httpx.post(
        server.api + "/chat/completions",
        json={"model": "assistant", "messages": QUESTION, "max_tokens": 2, "vendor_knob": 1},
        timeout=60,
    )
    assert response.status_code == 200


def test_unknown_path_and_wrong_method_use_the_envelope(server: RunningServer) -> None:
    assert _error(httpx.get(server.base_url + "/v1/nothing"))["code"] == "unknown_url"
    response = httpx.get(server.api + "/chat/completions")
    assert response.status_code == 405
    _error(response)


def test_stream_headers_and_every_frame_is_a_chunk(server: RunningServer) -> None:
    body = {"model": "assistant", "messages": QUESTION, "max_tokens": 6, "stream": True}
    with httpx.stream("POST", server.api + "/chat/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    for line in lines[:-1]:
        assert line.startswith("data: ")
        chunk = json.loads(line.removeprefix("data: "))
        assert chunk["object"] == "chat.completion.chunk"
        assert {"id", "created", "model", "choices"} <= set(chunk)
        for choice in chunk["choices"]:
            assert {"index", "delta", "finish_reason", "logprobs"} <= set(choice)


def test_stream_error_before_first_token_is_a_real_status(server: RunningServer) -> None:
    body = {"model": "nobody", "messages": QUESTION, "stream": True}
    response = httpx.post(server.api + "/chat/completions", json=body)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert _error(response)["code"] == "model_not_found"


def test_prompt_over_the_context_window_is_400(server: RunningServer) -> None:
    long_text = "word " * 6000
    body = {"model": "assistant", "messages": [{"role": "user", "content": long_text}]}
    response = httpx.post(server.api + "/chat/completions", json=body, timeout=120)
    assert response.status_code == 400
    assert _error(response)["code"] == "context_length_exceeded"
    streamed = httpx.post(
        server.api + "/chat/completions", json={**body, "stream": True}, timeout=120
    )
    assert streamed.status_code == 400


# Greedy decoding loops on this model until max_tokens: 3000 tokens take ~45 s here, so a
# generation that went on after its client left would hold the model far past 10 s.
LONG_STORY = {
    "model": "assistant",
    "messages": [{"role": "user", "content": "Write a very long story about the sea."}],
    "max_tokens": 3000,
    "temperature": 0,
}


async def assert_model_is_free(http: httpx.AsyncClient, server: RunningServer) -> None:
    started = time.monotonic()
    answer = await http.post(
        server.api + "/chat/completions",
        json={"model": "assistant", "messages": QUESTION, "max_tokens": 3},
    )
    assert answer.status_code == 200
    assert time.monotonic() - started < 10


PARALLEL = 4  # the embedded model's sequences at once (its default): fill them all


async def test_disconnected_streams_free_the_model_at_once(server: RunningServer) -> None:
    async def leave_early(http: httpx.AsyncClient) -> None:
        body = {**LONG_STORY, "stream": True}
        async with http.stream("POST", server.api + "/chat/completions", json=body) as response:
            seen = 0
            async for line in response.aiter_lines():
                seen += line.startswith("data: ")
                if seen >= 3:
                    break

    async with httpx.AsyncClient(timeout=60) as http:
        await asyncio.gather(*(leave_early(http) for _ in range(PARALLEL)))
        await assert_model_is_free(http, server)


async def test_disconnected_non_streaming_requests_free_the_model(server: RunningServer) -> None:
    async def leave_early(http: httpx.AsyncClient) -> None:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(server.api + "/chat/completions", json=LONG_STORY, timeout=1.0)

    async with httpx.AsyncClient(timeout=60) as http:
        await asyncio.gather(*(leave_early(http) for _ in range(PARALLEL)))
        await assert_model_is_free(http, server)


async def test_concurrent_requests_all_complete_in_turn(server: RunningServer) -> None:
    async with httpx.AsyncClient(timeout=120) as http:
        answers = await asyncio.gather(
            *(
                http.post(
                    server.api + "/chat/completions",
                    json={"model": "assistant", "messages": QUESTION, "max_tokens": 5, "seed": i},
                )
                for i in range(4)
            )
        )
    assert [answer.status_code for answer in answers] == [200] * 4
    assert all(answer.json()["choices"][0]["message"]["content"] for answer in answers)


@pytest.mark.parametrize("seed", [2**63 - 1, -5])
def test_any_64_bit_seed_is_served(server: RunningServer, seed: int) -> None:
    body = {"model": "assistant", "messages": QUESTION, "max_tokens": 2, "seed": seed}
    response = httpx.post(server.api + "/chat/completions", json=body, timeout=60)
    assert response.status_code == 200
