"""CORS for the widget: answered for the sites of active publishable keys, and no others.

Only the calls the widget makes take part: chatting, its visitor token, its
conversation and its answers to approval requests. A preflight from any other site gets
403 naming the rule; a request from an allowed site gets ``Access-Control-Allow-Origin``
for that site (never ``*``, never credentials: the widget sends a token, not cookies).
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headend.access.origins import request_origin
from headend.errors import OriginNotAllowed
from headend.server.json_bodies import json_response

CORS_PATHS = frozenset(
    {
        "/v1/chat/completions",
        "/widget/api/visitor",
        "/widget/api/conversation",
        "/widget/api/approval",
    }
)
PREFLIGHT = {
    "Access-Control-Allow-Methods": "GET, POST",
    "Access-Control-Allow-Headers": "authorization, content-type, x-tool-progress",
    "Access-Control-Max-Age": "600",
}
EXPOSED = "x-session-id, x-request-id, x-headend-ignored-fields, retry-after, retry-after-ms"


class WidgetCors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = None
        if scope["type"] == "http" and scope["path"] in CORS_PATHS:
            origin = request_origin(scope["headers"])
        if origin is None:
            await self.app(scope, receive, send)
            return
        allowed = origin in await scope["app"].state.services.visitors.origins()
        preflight = scope["method"] == "OPTIONS" and any(
            name == b"access-control-request-method" for name, _ in scope["headers"]
        )
        if preflight:
            if allowed:
                headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin", **PREFLIGHT}
                await Response(status_code=204, headers=headers)(scope, receive, send)
                return
            refused = OriginNotAllowed(
                f"No publishable key works from {origin}: headend answers CORS only for the "
                "sites of its publishable keys."
            )
            await json_response(refused.envelope(), 403)(scope, receive, send)
            return
        if not allowed:
            await self.app(scope, receive, send)
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if not name.startswith(b"access-control-")
                ]
                headers += [
                    (b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"access-control-expose-headers", EXPOSED.encode()),
                    (b"vary", b"Origin"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_cors)
