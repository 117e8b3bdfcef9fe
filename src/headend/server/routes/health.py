"""``GET /health``: liveness (the process answers); ``GET /health/ready``: readiness
(503 with the reasons until it should get traffic, see ``headend.server.readiness``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from headend import __version__
from headend.server.json_bodies import json_response
from headend.server.readiness import Readiness
from headend.server.services import services


def readiness(request: Request) -> Readiness:
    found: Readiness = request.app.state.readiness
    return found


async def health(request: Request) -> Response:
    found = services(request)
    return json_response({"status": "ok", "version": __version__, "agents": len(found.agents)})


async def ready(request: Request) -> Response:
    """Ready or not; ``problems``, when there are some, name what does not serve as its
    source says (the log and ``headend check`` say why: that may quote a file)."""
    found = readiness(request)
    reasons = await found.reasons()
    problems = {"problems": notes} if (notes := found.notes()) else {}
    if reasons:
        return json_response(
            {"status": "not_ready", "reasons": reasons, **problems}, status_code=503
        )
    return json_response({"status": "ready", "version": __version__, **problems})
