"""``POST /v1/embeddings`` through the openai SDK: the bundled GGUF loaded for embeddings,
and a model route passed to an OpenAI-compatible upstream; with keys, scopes and limits."""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Iterator

import httpx
import numpy as np
import openai
import pytest

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, HI, issue, serve
from tests.upstream import FakeUpstream, Reply, Status, fake_vector

pytestmark = pytest.mark.e2e

UPSTREAM_KEY = "sk-embedding-upstream-0123456789"
CONFIG = """
providers:
  embed: {{type: llama_cpp, embeddings: true, n_ctx: 256, parallel: 2}}
  up:
    type: openai
    base_url: "{url}/v1"
    api_key: {key}
    retry: {{attempts: 2, backoff: 0.01}}
  claude: {{type: anthropic, base_url: "{url}", retry: {{attempts: 1}}}}
models:
  smol-embed: embed
  text-embedding-3-small: up/text-embedding-3-small
  sonnet: claude/claude-sonnet-4
"""
AGENT = "---\nmodel: sonnet\n---\nYou help.\n"
SMOL_DIMENSIONS = 576  # SmolLM2-135M's hidden size


@pytest.fixture(scope="module")
def site(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("embeddings")
    (root / "agents").mkdir()
    (root / "agents" / "helper.md").write_text(AGENT)
    (root / "headend.yaml").write_text(CONFIG.format(url=upstream.url("e"), key=UPSTREAM_KEY))
    server = serve(root)
    yield server
    stop_server(server)


def sdk(server: RunningServer, key: str = ADMIN) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api, api_key=key, max_retries=0)


def vectors(answer: object) -> np.ndarray:
    return np.array([item.embedding for item in answer.data])  # type: ignore[attr-defined]


def test_the_embedded_model_embeds_texts_as_normalized_vectors(site: RunningServer) -> None:
    texts = [
        "The sea is deep and blue.",
        "A cat sleeps on the warm windowsill all afternoon.",
        "Stocks fell sharply today.",
        "The ocean is vast and blue.",
        "Hi",
    ]
    together = sdk(site).embeddings.create(model="smol-embed", input=texts)
    assert together.model == "smol-embed"
    assert [item.index for item in together.data] == list(range(len(texts)))
    found = vectors(together)
    assert found.shape == (len(texts), SMOL_DIMENSIONS)
    assert np.allclose(np.linalg.norm(found, axis=1), 1.0, atol=1e-5)
    # Packed two to a batch (parallel: 2), each input is embedded as if it were alone.
    alone = np.array(
        [sdk(site).embeddings.create(model="smol-embed", input=t).data[0].embedding for t in texts]
    )
    assert np.allclose(alone, found, atol=1e-5)
    assert together.usage.prompt_tokens == together.usage.total_tokens > len(texts)
    # The sea is nearer the ocean than the stock market.
    similarity = found @ found.T
    assert similarity[0, 3] > similarity[0, 2]
    assert similarity[0, 3] > similarity[0, 1]


def test_base64_token_arrays_and_dimensions(site: RunningServer) -> None:
    client = sdk(site)
    floats = client.embeddings.create(model="smol-embed", input="hello", encoding_format="float")
    raw = httpx.post(
        site.api + "/embeddings",
        json={"model": "smol-embed", "input": "hello", "encoding_format": "base64"},
        headers={"Authorization": f"Bearer {ADMIN}"},
    ).json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(packed) // 4}f", packed)
    assert np.allclose(decoded, floats.data[0].embedding, atol=1e-6)
    # The SDK asks for base64 by default and decodes it itself.
    assert np.allclose(
        client.embeddings.create(model="smol-embed", input="hello").data[0].embedding,
        floats.data[0].embedding,
        atol=1e-6,
    )

    tokens = client.embeddings.create(model="smol-embed", input=[[1, 2, 3], [4, 5]])
    assert tokens.usage.prompt_tokens == 5
    one = client.embeddings.create(model="smol-embed", input=[1, 2, 3])
    assert np.allclose(one.data[0].embedding, tokens.data[0].embedding, atol=1e-5)

    short = client.embeddings.create(model="smol-embed", input="hello", dimensions=64)
    vector = np.array(short.data[0].embedding)
    assert vector.shape == (64,)
    full = np.array(floats.data[0].embedding[:64])
    assert np.allclose(vector, full / np.linalg.norm(full), atol=1e-5)


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"input": ""}, "input", "invalid_value"),
        ({"input": []}, "input", "invalid_value"),
        ({"input": ["a", ""]}, "input", "invalid_value"),
        ({"input": [[1, 2], []]}, "input", "invalid_value"),
        ({"input": [1, "a"]}, "input", "invalid_value"),
        ({"input": {"text": "a"}}, "input", "invalid_value"),
        ({}, "input", "missing_required_parameter"),
        ({"input": "a", "encoding_format": "hex"}, "encoding_format", "invalid_value"),
        ({"input": "a", "dimensions": 0}, "dimensions", "invalid_value"),
        ({"input": "a", "dimensions": SMOL_DIMENSIONS + 1}, "dimensions", None),
        ({"input": [[1, 10**9]]}, "input", None),
        ({"input": "word " * 300}, "input", "context_length_exceeded"),
    ],
)
def test_bad_input_is_a_400_naming_the_param(
    site: RunningServer, body: dict[str, object], param: str, code: str | None
) -> None:
    response = httpx.post(
        site.api + "/embeddings",
        json={"model": "smol-embed", **body},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (param, code)


def test_names_that_do_not_embed(site: RunningServer) -> None:
    client = sdk(site)
    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(model="no-such-model", input="a")
    assert missing.value.code == "model_not_found"
    for name, says in (("helper", "agent"), ("sonnet", "does not serve embeddings")):
        with pytest.raises(openai.BadRequestError) as refused:
            client.embeddings.create(model=name, input="a")
        assert refused.value.code == "unsupported_value"
        assert says in refused.value.message
    with pytest.raises(openai.BadRequestError) as chat:
        client.chat.completions.create(model="smol-embed", messages=HI)
    assert "loaded for embeddings" in chat.value.message


def test_a_model_route_passes_embeddings_to_its_upstream(
    site: RunningServer, upstream: FakeUpstream
) -> None:
    upstream.reset()
    upstream.script("e", Status(503), Reply(usage=(11, 0)))
    answer = sdk(site).embeddings.create(
        model="text-embedding-3-small",
        input=["one", "three"],
        dimensions=3,
        extra_body={"input_type": "query"},
    )
    assert answer.model == "text-embedding-3-small"
    assert [item.embedding for item in answer.data] == [
        pytest.approx(fake_vector("one", 3)),
        pytest.approx(fake_vector("three", 3)),
    ]
    assert answer.usage.prompt_tokens == 11
    failed, retried = upstream.received("e")  # a 503 is tried again
    assert failed.path == retried.path == "/e/v1/embeddings"
    assert retried.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert retried.body == {
        "model": "text-embedding-3-small",
        "input": ["one", "three"],
        "dimensions": 3,
        "encoding_format": "base64",  # the SDK's default, passed as it is
        "input_type": "query",  # a vendor's own field, passed too
    }

    upstream.script("e", Status(400, {"error": {"message": "bad input", "param": "input"}}))
    with pytest.raises(openai.BadRequestError) as rejected:
        sdk(site).embeddings.create(model="text-embedding-3-small", input="x")
    assert rejected.value.body == {
        "message": "bad input",
        "type": "invalid_request_error",
        "param": "input",
        "code": None,
    }
    assert len(upstream.received("e")) == 3  # a client's fault is not retried


def test_keys_scopes_limits_and_usage_apply(site: RunningServer, upstream: FakeUpstream) -> None:
    upstream.reset()
    reader = issue(site, name="reader", scopes=["models:read"])
    with pytest.raises(openai.PermissionDeniedError):
        sdk(site, str(reader["secret"])).embeddings.create(model="smol-embed", input="a")
    helper_only = issue(site, name="helper-only", scopes=["chat"], agents=["helper"])
    with pytest.raises(openai.NotFoundError):
        sdk(site, str(helper_only["secret"])).embeddings.create(model="smol-embed", input="a")

    limited = issue(site, name="embedder", scopes=["chat"], rpm=2)
    client = sdk(site, str(limited["secret"]))
    first = client.embeddings.with_raw_response.create(model="smol-embed", input=["a b", "c"])
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    upstream.script("e", Reply(usage=(9, 0)))
    client.embeddings.create(model="text-embedding-3-small", input="a")
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="smol-embed", input="a")

    rows = httpx.get(
        site.base_url + "/admin/usage",
        params={"key": str(limited["id"])},
        headers={"Authorization": f"Bearer {ADMIN}"},
    ).json()["data"]
    used = {row["model"]: row for row in rows}
    local_tokens = first.parse().usage.prompt_tokens
    assert used["smol-embed"]["requests"] == 1
    assert used["smol-embed"]["prompt_tokens"] == local_tokens
    assert used["text-embedding-3-small"]["prompt_tokens"] == 9
    assert used["text-embedding-3-small"]["completion_tokens"] == 0


def test_a_client_gone_mid_request_stops_its_work(site: RunningServer) -> None:
    """2,048 inputs take the bundled model about a minute here; a client that gives up
    after half a second frees the model for the next request at once, unharmed."""
    reference = sdk(site).embeddings.create(model="smol-embed", input="hello").data[0].embedding
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            site.api + "/embeddings",
            json={"model": "smol-embed", "input": ["some words here and there"] * 2048},
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=0.5,
        )
    after = sdk(site).embeddings.create(model="smol-embed", input="hello").data[0].embedding
    assert time.monotonic() - started < 20  # not after the abandoned minute of work
    assert np.allclose(after, reference, atol=1e-6)
