"""``GET /v1/models`` and ``GET /v1/models/{id}``: every agent (at the version served, its
``version`` given) and every model route; ``GET /v1/models/support@2`` finds an earlier
version."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from headend.access.principal import Principal, check_draft_access
from headend.agents.registry import Agent
from headend.errors import ModelNotFound
from headend.schemas.openai.models_api import Model, ModelList
from headend.server.auth import principal_of
from headend.server.json_bodies import json_response
from headend.server.services import Services, services

AGENT_OWNER = "headend"


def _model(
    found: Services, name: str, principal: Principal, agent: Agent | None = None
) -> Model | None:
    """The entry for ``name``; ``agent``, when given, is the version it names."""
    agent = agent or found.agents.get(name)
    if not principal.may_use(agent.id if agent is not None else name):
        return None
    created = found.agents.loaded_at
    if agent is None and name == found.embeddings.builtin_name():
        return Model(id=name, created=created, owned_by=AGENT_OWNER)
    if agent is not None:
        return Model(id=name, created=created, owned_by=AGENT_OWNER, version=agent.version or None)
    targets = found.routes.for_client(name)
    if targets is None:
        return None
    return Model(id=name, created=created, owned_by=targets[0].provider)


async def list_models(request: Request) -> Response:
    found = services(request)
    # (the built-in embedding model is not listed: chat clients offer what they list as
    # chat models; GET /v1/models/all-MiniLM-L6-v2 finds it)
    names = [agent.id for agent in found.agents] + found.routes.names()
    principal = principal_of(request.scope)
    return json_response(ModelList(data=[m for n in names if (m := _model(found, n, principal))]))


async def retrieve_model(request: Request) -> Response:
    name = request.path_params["model"]
    found = services(request)
    principal = principal_of(request.scope)
    check_draft_access(name, principal)
    model = _model(found, name, principal, await found.versions.resolve(name))
    if model is None:
        raise ModelNotFound(name)
    return json_response(model)
