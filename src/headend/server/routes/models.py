"""``GET /v1/models`` and ``GET /v1/models/{id}``: one entry per agent."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from headend.agents.registry import Agent
from headend.errors import ModelNotFound
from headend.schemas.openai.models import Model, ModelList
from headend.server.http import json_response
from headend.server.services import services

OWNER = "headend"


def _model(agent: Agent, created: int) -> Model:
    return Model(id=agent.id, created=created, owned_by=OWNER)


async def list_models(request: Request) -> Response:
    agents = services(request).agents
    return json_response(ModelList(data=[_model(agent, agents.loaded_at) for agent in agents]))


async def retrieve_model(request: Request) -> Response:
    agents = services(request).agents
    model_id = request.path_params["model"]
    agent = agents.get(model_id)
    if agent is None:
        raise ModelNotFound(model_id)
    return json_response(_model(agent, agents.loaded_at))
