"""Every value of a rich, valid request, replaced one at a time by a value of every other JSON
type, on every surface, against a real server: never a 5xx, every refusal in its envelope.

Hand-written cases and random bodies both missed fields that reached code trusting their type
(a tool's ``description`` as a number, a chat tool's ``function`` as a string); walking every
path of a body that uses every feature finds them all, the same way each run.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer
from tests.e2e.refusals import problem
from tests.e2e.sites import ADMIN, site_fixture

pytestmark = pytest.mark.e2e

AGENTS = {
    "toolbox": "---\nmodel: up/toolbox\ntools: [calculator, current_time]\n---\nYou help.\n",
    "plain": "---\nmodel: up/plain\n---\nYou answer.\n",
}
EMBEDDINGS = "  emb: up/text-embedding-3-small\n"
served = site_fixture("w", AGENTS, EMBEDDINGS)

# One value of each JSON type; a value is replaced by each of those of another type.
SAMPLES: dict[str, Any] = {
    "null": None,
    "bool": True,
    "int": 3,
    "float": 1.5,
    "string": "x",
    "list": ["x"],
    "object": {"x": 1},
}
SCHEMA = {
    "type": "object",
    "properties": {"q": {"type": "integer", "description": "what to look up"}},
    "required": ["q"],
}

CHAT = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Really."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Hi"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
            "name": "ann",
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
        {"role": "user", "content": "And then?"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Looks a thing up.",
                "parameters": SCHEMA,
                "strict": False,
            },
        }
    ],
    "tool_choice": {"type": "function", "function": {"name": "lookup"}},
    "parallel_tool_calls": True,
    "temperature": 0.5,
    "top_p": 0.9,
    "max_tokens": 20,
    "max_completion_tokens": 20,
    "stop": ["\n\n"],
    "seed": 7,
    "n": 1,
    "presence_penalty": 0.1,
    "frequency_penalty": 0.1,
    "logit_bias": {"50256": -100},
    "logprobs": False,
    "user": "u-1",
    "metadata": {"team": "a"},
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "card", "schema": SCHEMA, "strict": True},
    },
    "stream": True,
    "stream_options": {"include_usage": True},
    "top_k": 40,
}

RESPONSES = {
    "instructions": "Be brief.",
    "input": [
        {"role": "developer", "content": "Really."},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Hi"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
            ],
        },
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "?"}]},
        {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": '{"q": 1}'},
        {"type": "function_call_output", "call_id": "c1", "output": "42"},
        {
            "type": "function_call",
            "call_id": "c2",
            "namespace": "crm",
            "name": "find",
            "arguments": "{}",
        },
        {
            "type": "function_call_output",
            "call_id": "c2",
            "output": [{"type": "input_text", "text": "none"}],
        },
        {"type": "custom_tool_call", "call_id": "c3", "name": "apply_patch", "input": "*** x"},
        {"type": "custom_tool_call_output", "call_id": "c3", "output": "done"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "e"},
        {"role": "user", "content": "And then?"},
    ],
    "tools": [
        {
            "type": "function",
            "name": "lookup",
            "description": "Looks a thing up.",
            "parameters": SCHEMA,
            "strict": False,
        },
        {"type": "custom", "name": "apply_patch", "description": "Patches files."},
        {
            "type": "namespace",
            "name": "crm",
            "description": "The CRM.",
            "tools": [
                {"type": "function", "name": "find", "description": "Finds.", "parameters": SCHEMA}
            ],
        },
        {"type": "web_search"},
    ],
    "tool_choice": {"type": "function", "name": "lookup"},
    "parallel_tool_calls": True,
    "text": {
        "format": {"type": "json_schema", "name": "card", "schema": SCHEMA, "strict": True},
        "verbosity": "low",
    },
    "temperature": 0.5,
    "top_p": 0.9,
    "max_output_tokens": 20,
    "user": "u-1",
    "metadata": {"team": "a"},
    "store": False,
    "background": False,
    "stream": True,
    "truncation": "disabled",
    "reasoning": {"effort": "low", "summary": "auto"},
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "k",
}

MESSAGES = {
    "max_tokens": 20,
    "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Really."}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Hi"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Looking."},
                {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": 1}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": "42"}],
                    "is_error": False,
                },
                {"type": "text", "text": "And then?"},
            ],
        },
    ],
    "tools": [{"name": "lookup", "description": "Looks a thing up.", "input_schema": SCHEMA}],
    "tool_choice": {"type": "tool", "name": "lookup"},
    "stop_sequences": ["\n\n"],
    "metadata": {"user_id": "u-1"},
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 40,
    "stream": True,
}

COMPLETIONS = {
    "prompt": "Say hi",
    "max_tokens": 8,
    "temperature": 0.5,
    "top_p": 0.9,
    "stop": ["\n"],
    "n": 1,
    "echo": False,
    "seed": 7,
    "user": "u-1",
    "stream": True,
    "stream_options": {"include_usage": True},
}

CHATS = [("/v1/chat/completions", CHAT), ("/v1/responses", RESPONSES), ("/v1/messages", MESSAGES)]
EMBED = {"input": ["one", "two"], "encoding_format": "float", "dimensions": 8, "user": "u-1"}

# (path, model, body): each surface to an agent that runs the tool loop, to one that does not,
# and to a model route.
SURFACES = [
    *((path, model, body) for path, body in CHATS for model in ("toolbox", "plain", "gpt")),
    ("/v1/messages/count_tokens", "plain", MESSAGES),
    ("/v1/completions", "plain", COMPLETIONS),
    ("/v1/embeddings", "emb", EMBED),
]


def json_type(value: Any) -> str:
    for name, sample in SAMPLES.items():
        if type(value) is type(sample) or (value is None and sample is None):
            return name
    raise AssertionError(f"not a JSON value: {value!r}")


def paths(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into ``value`` (the root itself excluded)."""
    children = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in children:
        yield (*at, key)
        yield from paths(child, (*at, key))


def replaced(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(body)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = copy.deepcopy(value)
    return out


def variants(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each path of ``body`` holding each JSON type it does not hold; both streamed and not."""
    for streamed in (True, False):
        base = dict(body)
        if "stream" in base:
            base["stream"] = streamed
        if not streamed:
            base.pop("stream_options", None)
        elif "stream" not in base:
            continue
        for path in paths(base):
            held = json_type(replaced_value(base, path))
            for kind, sample in SAMPLES.items():
                if kind != held:
                    yield f"{'/'.join(map(str, path))}={kind}", replaced(base, path, sample)


def replaced_value(body: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        body = body[key]
    return body


@pytest.mark.parametrize(
    ("path", "model", "body"),
    SURFACES,
    ids=[f"{path}-{model}" for path, model, _ in SURFACES],
)
def test_a_value_of_the_wrong_type_anywhere_is_a_4xx_never_a_5xx(
    served: RunningServer, path: str, model: str, body: dict[str, Any]
) -> None:
    anthropic = path.startswith("/v1/messages")
    failures: list[str] = []
    count = 0
    with httpx.Client(
        base_url=served.base_url, timeout=30, headers={"Authorization": f"Bearer {ADMIN}"}
    ) as client:
        rich = {"model": model, **body} | ({"stream": False} if "stream" in body else {})
        valid = client.post(path, json={k: v for k, v in rich.items() if k != "stream_options"})
        assert valid.status_code == 200, valid.text  # the rich body itself is served
        for name, variant in variants({"model": model, **body}):
            count += 1
            found = problem(client.post(path, json=variant), anthropic)
            if found is not None:
                failures.append(f"{name}: {found}")
    assert count > 40
    assert not failures, f"{len(failures)} of {count}:\n" + "\n".join(failures[:25])


# headend's own JSON APIs: sessions, keys, agents, the console's sign-in.
AGENT_FILE = "---\nmodel: up/swept\ntemperature: 0.2\n---\nYou answer.\n"
OWN = [
    ("POST", "/v1/sessions", {"agent": "plain", "metadata": {"team": "a"}}),
    (
        "POST",
        "/v1/sessions/{session}/messages",
        {
            "content": [{"type": "text", "text": "Hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ),
    (
        "POST",
        "/admin/keys",
        {
            "name": "swept",
            "scopes": ["chat", "models:read"],
            "agents": ["plain"],
            "expires": "30d",
            "rpm": 60,
            "tpm": 1000,
            "max_concurrency": 2,
            "budget": 5.5,
            "budget_period": "day",
            "tools": ["calculator"],
        },
    ),
    (
        "POST",
        "/admin/keys",
        {
            "name": "swept-shop",
            "publishable": True,
            "agents": ["plain"],
            "origins": ["https://shop.example.com"],
            "visitor_rpm": 5,
            "read_only": True,
        },
    ),
    (
        "POST",
        "/admin/agents",
        {
            "id": "swept",
            "model": "up/swept",
            "temperature": 0.2,
            "tools": ["calculator"],
            "prompt": "You answer.",
        },
    ),
    ("PUT", "/admin/agents/drafted/draft", {"content": AGENT_FILE}),
    ("POST", "/admin/agents/drafted/publish", {"version": 1}),
    ("POST", "/console/api/session", {"key": ADMIN}),
]


@pytest.mark.parametrize(("method", "path", "body"), OWN, ids=[f"{m} {p}" for m, p, _ in OWN])
def test_headend_s_own_apis_answer_wrong_types_with_a_4xx(
    served: RunningServer, method: str, path: str, body: dict[str, Any]
) -> None:
    failures: list[str] = []
    count = 0
    headers = {"Authorization": f"Bearer {ADMIN}"}
    if path.startswith("/console/"):
        headers["Origin"] = served.base_url  # the console's own page signs in
    with httpx.Client(base_url=served.base_url, timeout=30, headers=headers) as client:
        session = client.post("/v1/sessions", json={"agent": "plain"}).json()["id"]
        drafted = client.post("/admin/agents", json={"id": "drafted", "content": AGENT_FILE})
        assert drafted.status_code in (200, 409), drafted.text  # 409: made by an earlier case
        client.post("/admin/agents/drafted/publish")
        url = path.format(session=session)
        rich = body | ({"stream": False} if "stream" in body else {})
        valid = client.request(
            method, url, json={k: v for k, v in rich.items() if k != "stream_options"}
        )
        assert valid.status_code < 300 or valid.status_code == 409, valid.text
        for name, variant in variants(body):
            count += 1
            found = problem(client.request(method, url, json=variant))
            if found is not None:
                failures.append(f"{name}: {found}")
    assert count > 5
    assert not failures, f"{len(failures)} of {count}:\n" + "\n".join(failures[:25])
