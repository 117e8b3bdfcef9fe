"""No request body, however odd, makes the server answer 500."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headend.app import create_app
from headend.config import Settings
from tests.fakes import ScriptedEmbedder, ScriptedProvider

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "model",
    "messages",
    "stream",
    "stream_options",
    "temperature",
    "max_tokens",
    "n",
    "stop",
    "seed",
    "tools",
    "response_format",
    "top_k",
    "mirostat",
    "logprobs",
]
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool", "developer", "x"])},
    optional={"content": json_values, "name": json_values, "tool_calls": json_values},
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "model": st.sampled_from(["bot", "nope"]) | json_values,
            "messages": st.lists(message, max_size=3) | json_values,
        },
        optional={field: json_values for field in FIELDS[2:]},
    ),
)


def run(app: Any, body: bytes, path: str = "/v1/chat/completions") -> httpx.Response:
    async def go() -> httpx.Response:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.post(path, content=body)

    return asyncio.run(go())


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies)
def test_any_json_body_gets_a_non_500_answer(tmp_path: Path, body: Any) -> None:
    agents = tmp_path / "agents"
    agents.mkdir(exist_ok=True)
    (agents / "bot.md").write_text("---\nmodel: local\n---\nhi\n")
    app = create_app(
        Settings(agents_dir=agents, store="sqlite:///:memory:"),
        providers={"local": ScriptedProvider()},
    )
    response = run(app, json.dumps(body).encode())
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@given(raw=st.binary(max_size=64))
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_bytes_get_a_non_500_answer(tmp_path: Path, raw: bytes) -> None:
    app = create_app(
        Settings(agents_dir=tmp_path, store="sqlite:///:memory:"),
        providers={"local": ScriptedProvider()},
    )
    assert run(app, raw).status_code < 500


block = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image", "tool_use", "tool_result", "input_text", "x"])},
    optional={
        "text": json_values,
        "content": json_values,
        "input": json_values,
        "source": json_values,
        "image_url": json_values,
    },
)
turn = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "developer", "x"])},
    optional={
        "type": st.sampled_from(["message", "function_call", "function_call_output", "x"]),
        "content": st.lists(block, max_size=3) | json_values,
        "call_id": json_values,
        "output": json_values,
    },
)
chunking = st.fixed_dictionaries(
    {"type": st.sampled_from(["auto", "static", "other"])},
    optional={
        "static": st.fixed_dictionaries(
            {},
            optional={
                "max_chunk_size_tokens": st.integers(0, 5000) | json_values,
                "chunk_overlap_tokens": st.integers(-1, 3000) | json_values,
            },
        )
    },
)
a_filter = st.recursive(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["eq", "ne", "gt", "in", "nin", "like"])},
        optional={"key": json_values, "value": json_values},
    ),
    lambda inner: st.fixed_dictionaries(
        {"type": st.sampled_from(["and", "or"])}, optional={"filters": st.lists(inner, max_size=3)}
    ),
    max_leaves=5,
)
guardrail = st.fixed_dictionaries(
    {"check": st.sampled_from(["pii", "secrets", "regex", "judge", "hours", "tool_calls", "x"])},
    optional={
        "apply_to": st.lists(st.sampled_from(["input", "output", "tool_input", "on"]), max_size=3)
        | json_values,
        "action": st.sampled_from(["mask", "block", "log", "x"]) | json_values,
        "patterns": st.lists(st.sampled_from(["(?i)x", "(", "a*", "[z-a]"]), max_size=2)
        | json_values,
        "entities": st.lists(st.sampled_from(["EMAIL", "dna"]), max_size=2) | json_values,
        "open": st.lists(st.sampled_from(["mon-fri 09:00-18:00", "mon 25:00-26:00"]), max_size=2)
        | json_values,
        "timezone": st.sampled_from(["UTC", "Mars/Base"]) | json_values,
        "max": json_values,
        "model": st.sampled_from(["emb", "nope"]) | json_values,
        "prompt": json_values,
        "max_chars": json_values,
        "on": json_values,
    },
)
SURFACES = {
    "/admin/keys": st.fixed_dictionaries(
        {"name": st.text(min_size=1, max_size=5)},
        optional={"guardrails": st.lists(guardrail, max_size=3) | json_values},
    ),
    "/v1/embeddings": st.fixed_dictionaries(
        {"model": st.sampled_from(["bot", "nope", "emb"]) | json_values},
        optional={
            "input": st.lists(st.text() | st.integers() | st.lists(st.integers()), max_size=3)
            | json_values,
            "encoding_format": st.sampled_from(["float", "base64"]) | json_values,
            "dimensions": json_values,
        },
    ),
    "/v1/responses": st.fixed_dictionaries(
        {"model": st.sampled_from(["bot", "nope"]) | json_values},
        optional={
            "input": st.lists(turn, max_size=3) | json_values,
            "instructions": json_values,
            "tools": json_values,
            "tool_choice": json_values,
            "text": json_values,
            "previous_response_id": json_values,
            "store": json_values,
            "stream": json_values,
            "max_output_tokens": json_values,
        },
    ),
    "/v1/completions": st.fixed_dictionaries(
        {"model": st.sampled_from(["bot", "nope"]) | json_values},
        optional={
            "prompt": json_values,
            "echo": json_values,
            "n": json_values,
            "suffix": json_values,
            "stream": json_values,
            "max_tokens": json_values,
        },
    ),
    "/v1/messages": st.fixed_dictionaries(
        {
            "model": st.sampled_from(["bot", "nope"]) | json_values,
            "messages": st.lists(turn, max_size=3) | json_values,
        },
        optional={
            "max_tokens": st.integers(-1, 50) | json_values,
            "system": json_values,
            "tools": json_values,
            "tool_choice": json_values,
            "stop_sequences": json_values,
            "metadata": json_values,
            "stream": json_values,
        },
    ),
    "/v1/sessions/sess_unknown/approvals/mcpr_unknown": st.fixed_dictionaries(
        {"approve": st.booleans() | json_values},
        optional={"reason": st.text() | json_values},
    ),
    "/v1/vector_stores": st.fixed_dictionaries(
        {},
        optional={
            "file_ids": st.lists(st.sampled_from(["file-x", ""]), max_size=2) | json_values,
            "name": json_values,
            "chunking_strategy": chunking | json_values,
            "expires_after": json_values,
            "metadata": json_values,
        },
    ),
    "/v1/vector_stores/vs_unknown/search": st.fixed_dictionaries(
        {"query": st.text(max_size=20) | json_values},
        optional={
            "filters": a_filter | json_values,
            "max_num_results": st.integers(-1, 60) | json_values,
            "ranking_options": json_values,
            "rewrite_query": json_values,
        },
    ),
    "/v1/vector_stores/vs_unknown/file_batches": st.fixed_dictionaries(
        {},
        optional={
            "file_ids": json_values,
            "files": json_values,
            "attributes": json_values,
            "chunking_strategy": chunking | json_values,
        },
    ),
    "/v1/responses#file_search": st.fixed_dictionaries(
        {
            "model": st.sampled_from(["bot", "nope"]),
            "input": st.text(max_size=10),
            "tools": st.lists(
                st.fixed_dictionaries(
                    {"type": st.just("file_search")},
                    optional={
                        "vector_store_ids": json_values,
                        "filters": a_filter | json_values,
                        "max_num_results": json_values,
                        "ranking_options": json_values,
                    },
                ),
                min_size=1,
                max_size=2,
            ),
        }
    ),
    "/widget/api/approval": st.fixed_dictionaries(
        {
            "session_id": st.sampled_from(["sess_unknown", ""]) | json_values,
            "approval_id": st.sampled_from(["mcpr_unknown", ""]) | json_values,
        },
        optional={"approve": st.booleans() | json_values, "reason": st.text() | json_values},
    ),
}


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_every_surface_answers_odd_bodies_with_a_4xx_in_its_shape(
    tmp_path: Path, data: st.DataObject
) -> None:
    path = data.draw(st.sampled_from(sorted(SURFACES)))
    body = data.draw(st.one_of(json_values, SURFACES[path]))
    agents = tmp_path / "agents"
    agents.mkdir(exist_ok=True)
    # its guardrails see every odd body that gets past validation
    guarded = "guardrails: [{check: pii, action: mask}, {check: secrets, apply_to: [output]}]"
    (agents / "bot.md").write_text(f"---\nmodel: local\n{guarded}\n---\nhi\n")
    app = create_app(
        Settings(agents_dir=agents, store="sqlite:///:memory:", models={"emb": "embedder"}),
        providers={"local": ScriptedProvider(), "embedder": ScriptedEmbedder()},
    )
    response = run(app, json.dumps(body).encode(), path.split("#")[0])
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        if path == "/v1/messages":
            assert response.json()["type"] == "error"
            assert set(response.json()["error"]) == {"type", "message"}
        else:
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/messages",
            {
                "model": "bot",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "text", "text": None}]}],
            },
        ),
        (
            "/v1/messages",
            {
                "model": "bot",
                "max_tokens": 5,
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": [{"type": "text", "text": 7}]},
                ],
            },
        ),
        (
            "/v1/responses",
            {
                "model": "bot",
                "input": [{"role": "user", "content": [{"type": "input_text", "text": None}]}],
            },
        ),
    ],
)
def test_a_text_block_whose_text_is_not_a_string_is_a_400(
    tmp_path: Path, path: str, body: dict[str, Any]
) -> None:
    # Found by the property test above: a null text once reached str.join.
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "bot.md").write_text("---\nmodel: local\n---\nhi\n")
    app = create_app(
        Settings(agents_dir=agents, store="sqlite:///:memory:"),
        providers={"local": ScriptedProvider()},
    )
    response = run(app, json.dumps(body).encode(), path)
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert "content[0].text" in message, message  # names the field
    assert "string" in message, message
