"""The reference for bench/gateway.py: a bare Starlette + aiohttp proxy, nothing else.

No auth, limits, accounting, ids or logs: it reads the body, picks the upstream by model
and relays the answer, streamed as it arrives. ``bare_proxy.py PORT MODEL=URL ...`` serves
it on uvicorn; bench/servers.py imports ``app`` (upstreams from BARE_UPSTREAMS) for granian.
"""

import json
import os
import sys

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

PAIRS = sys.argv[2:] if __name__ == "__main__" else os.environ["BARE_UPSTREAMS"].split(",")
UPSTREAMS = dict(pair.split("=", 1) for pair in PAIRS)
session: aiohttp.ClientSession | None = None


async def chat(request: Request) -> Response:
    global session
    session = session or aiohttp.ClientSession()
    body = await request.body()
    upstream = await session.post(
        UPSTREAMS[json.loads(body)["model"]],
        data=body,
        headers={"content-type": "application/json"},
    )
    kind = upstream.headers.get("content-type", "application/json")
    if kind.startswith("text/event-stream"):
        return StreamingResponse(upstream.content.iter_any(), media_type=kind)
    return Response(await upstream.read(), upstream.status, media_type=kind)


app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
