"""``GET /metrics``: Prometheus' text format, for keys with the ``metrics`` scope."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from headend.server.services import services

# The text format every Prometheus reads (the names are plain ASCII, so 0.0.4 is exact).
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


async def metrics(request: Request) -> Response:
    found = services(request)
    found.runs.router.report_cooling()
    return Response(found.metrics.exposition(), media_type=TEXT_FORMAT)
