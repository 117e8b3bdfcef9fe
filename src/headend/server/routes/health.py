"""``GET /health``: the process is up and its models are loaded."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from headend import __version__
from headend.server.http import json_response
from headend.server.services import services


async def health(request: Request) -> Response:
    found = services(request)
    return json_response({"status": "ok", "version": __version__, "agents": len(found.agents)})
