"""Bodies generated from OpenAI's own request schemas, valid and invalid, sent to a real server:
never a 5xx, every refusal in the envelope.

schemathesis turns the spec's ``CreateChatCompletionRequest``, ``CreateResponse``,
``CreateCompletionRequest`` and ``CreateEmbeddingRequest`` (cut into tests/spec by
``extract.py``) into Hypothesis strategies, positive (what the spec allows) and negative (what
it forbids). Most generated bodies name no model headend serves and would stop at the 404, so
the ``model`` of every generated object is set to one it does serve, in turn an agent that runs
the tool loop, a plain agent and a model route. Derandomized: each run sends the same bodies.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import RunningServer
from tests.e2e.refusals import problem
from tests.e2e.sites import ADMIN, site_fixture
from tests.spec import openai_components

pytestmark = pytest.mark.e2e

AGENTS = {
    "toolbox": "---\nmodel: up/toolbox\ntools: [calculator, current_time]\n---\nYou help.\n",
    "plain": "---\nmodel: up/plain\n---\nYou answer.\n",
}
served = site_fixture("f", AGENTS, "  emb: up/text-embedding-3-small\n")

OPERATIONS = {
    "/v1/chat/completions": ("CreateChatCompletionRequest", ["toolbox", "plain", "gpt"]),
    "/v1/responses": ("CreateResponse", ["toolbox", "plain", "gpt"]),
    "/v1/completions": ("CreateCompletionRequest", ["plain", "gpt"]),
    "/v1/embeddings": ("CreateEmbeddingRequest", ["emb"]),
}
EXAMPLES = 120  # per operation and mode: about 1,000 requests in all


def spec() -> Any:
    def operation(schema: str) -> dict[str, Any]:
        body = {"schema": {"$ref": f"#/components/schemas/{schema}"}}
        return {
            "post": {
                "requestBody": {"required": True, "content": {"application/json": body}},
                "responses": {"200": {"description": "ok"}},
            }
        }

    return schemathesis.openapi.from_dict(
        {
            "openapi": "3.1.0",
            "info": {"title": "OpenAI requests", "version": "1"},
            "paths": {path: operation(schema) for path, (schema, _) in OPERATIONS.items()},
            "components": {"schemas": openai_components()},
        }
    )


@pytest.fixture(scope="module")
def client(served: RunningServer) -> Any:
    with httpx.Client(
        base_url=served.base_url, timeout=30, headers={"Authorization": f"Bearer {ADMIN}"}
    ) as opened:
        yield opened


@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize("path", sorted(OPERATIONS))
def test_bodies_generated_from_the_spec_never_get_a_5xx(
    client: httpx.Client, path: str, mode: str
) -> None:
    _, models = OPERATIONS[path]
    cases = spec()[path]["POST"].as_strategy(generation_mode=schemathesis.GenerationMode(mode))
    seen: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, model=st.sampled_from(models))
    def probe(case: Any, model: str) -> None:
        body = case.body
        if isinstance(body, dict):
            body = {**body, "model": model}
        response = client.post(path, json=body) if not isinstance(body, bytes) else None
        if response is None:
            response = client.post(path, content=body, headers={"Content-Type": "application/json"})
        found = problem(response)
        if found is not None:
            seen.append(f"{found}\n  body: {str(body)[:400]}")

    probe()
    assert not seen, f"{len(seen)} bad answers:\n" + "\n".join(seen[:10])
