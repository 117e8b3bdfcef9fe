"""``/admin/agents``: an agent's recorded versions, for a key with ``admin``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from headend.errors import NotFound
from headend.schemas.agents import AgentVersionEntry, AgentVersionList
from headend.server.http import json_response
from headend.server.services import services


async def list_versions(request: Request) -> Response:
    """``GET /admin/agents/{agent_id}/versions``: newest first, with each one's text."""
    found = services(request)
    agent_id = request.path_params["agent_id"]
    versions = await found.store.agent_versions(agent_id)
    current = found.agents.get(agent_id)
    if not versions:
        raise NotFound(f"No agent '{agent_id}' has been recorded.", param="agent_id")
    served = current.version if current is not None else None
    return json_response(
        AgentVersionList(
            data=[
                AgentVersionEntry(
                    agent=v.agent,
                    version=v.version,
                    origin=v.origin,
                    created_by=v.created_by,
                    created_at=int(v.created_at),
                    served=v.version == served,
                    content=v.content,
                )
                for v in versions
            ]
        )
    )
