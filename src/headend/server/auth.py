"""The auth middleware: every request's caller found and its scope checked, before any route.

The credential comes from ``Authorization: Bearer`` or ``x-api-key`` (what Anthropic clients
send), once; without one, the console's sign-in cookie acts as the key it signed in with; a
widget visitor's token (``vt-he-``) chats as one visitor of one site. Who that is, is
``headend.access``'s to say; which scope a method and path need, is ``required_scope``'s.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headend.access.authenticator import Authenticator
from headend.access.principal import AGENTS_WRITE, OPEN, Principal
from headend.access.visitor_tokens import VISITOR_PREFIX
from headend.errors import APIError, InsufficientScope, InvalidKey
from headend.server.context import refuse
from headend.server.cookies import check_origin, cookie_token
from headend.server.error_shapes import openai_envelope, send_error
from headend.server.request_record import context_of

log = logging.getLogger(__name__)

CREDENTIAL = "credential"  # a socket's key, kept in its scope's state to check it again
POLICY_VIOLATION = 1008  # the WebSocket close code for a caller refused

# Health, the console's page and assets (it shows the sign-in), and the sign-in itself.
# The widget's script and its visitor sign-in (which checks the publishable key itself).
PUBLIC_PATHS = frozenset(
    {
        "/health",
        "/health/ready",
        "/",
        "/console",
        "/console/api/session",
        "/widget.js",
        "/widget/api/visitor",
    }
)
# What a visitor token may call: chat, and read back its own conversation.
VISITOR_PATHS = frozenset(
    {"/v1/chat/completions", "/widget/api/conversation", "/widget/api/approval"}
)


def required_scope(method: str, path: str) -> str | None:
    """The scope a request needs; None for what anyone may call (health, the console's
    page and its sign-in)."""
    if path in PUBLIC_PATHS or path.startswith("/console/static/"):
        return None
    if path == "/admin/agents" or path.startswith("/admin/agents/"):
        return AGENTS_WRITE
    if path.startswith("/admin"):
        return "admin"
    if path == "/metrics":
        return "metrics"
    if path.startswith("/v1/models") or path == "/console/api/agents":
        return "models:read"
    if path.startswith("/v1/sessions") and method in READS:
        return "sessions:read"
    if path.startswith(("/v1/files", "/v1/vector_stores")):
        return "knowledge"
    return "chat"


READS = ("GET", "HEAD")  # HEAD is a GET without the body: the same scope


def presented_secret(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The request's one credential; two (of one kind, or one of each) are refused, so no
    rule about which one wins can be played against another part of the stack."""
    secret = None
    found = 0
    for name, value in headers:
        if name == b"authorization":
            found += 1
            if value[:7].lower() == b"bearer ":
                secret = value[7:].strip().decode("latin-1") or None
        elif name == b"x-api-key":
            found += 1
            secret = value.strip().decode("latin-1") or None
    if found > 1:
        raise InvalidKey(
            "Send one credential: either 'Authorization: Bearer <key>' or 'x-api-key', once."
        )
    return secret


class AuthMiddleware:
    """Finds the caller and checks the scope before any route runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._socket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        needed = required_scope(scope["method"], scope["path"])
        if needed is not None:
            try:
                principal = await self._caller(scope, needed, cookies=True)
            except APIError as exc:
                await refuse(scope, send, exc)
                return
            scope["state"]["principal"] = principal
            context = context_of(scope)
            if context is not None:
                context.key_id = principal.key_id
        await self.app(scope, receive, send)

    async def _socket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket upgrade: a key, as for any request (a browser's sign-in cookie would
        reach a socket any site opens, so it is not taken); refused before the socket opens,
        with the status and envelope an HTTP request would get."""
        try:
            principal = await self._caller(scope, "chat", cookies=False)
        except APIError as exc:
            await deny_socket(scope, send, exc)
            return
        state = scope.setdefault("state", {})
        state["principal"] = principal
        state[CREDENTIAL] = presented_secret(scope["headers"])  # checked again per response
        await self.app(scope, receive, send)

    async def _caller(self, scope: Scope, needed: str, *, cookies: bool) -> Principal:
        services = scope["app"].state.services
        authenticator: Authenticator = services.auth
        headers = scope["headers"]
        secret = presented_secret(headers)
        token = cookie_token(headers) if secret is None and cookies else None
        if secret is not None and secret.startswith(VISITOR_PREFIX):
            principal: Principal = await services.visitors.principal(secret, scope)
        elif token is not None and not await authenticator.is_open():
            check_origin(scope["method"], headers)
            principal = await services.logins.principal(token)
        else:
            principal = await authenticator.principal(secret)
        if principal.visitor is not None and (
            scope["type"] != "http" or scope["path"] not in VISITOR_PATHS
        ):
            raise InsufficientScope(
                "A visitor token may only chat (POST /v1/chat/completions), read "
                "its own conversation and answer its approval requests."
            )
        if not principal.has(needed):
            raise InsufficientScope(f"This key lacks the '{needed}' scope.")
        return principal


async def deny_socket(scope: Scope, send: Send, error: APIError) -> None:
    """Refuse a WebSocket upgrade as HTTP (401, 403… in the OpenAI envelope) where the server
    can, else by closing it unopened (1008, policy violation)."""
    if "websocket.http.response" in scope.get("extensions", {}):

        async def as_socket(message: Message) -> None:
            await send({**message, "type": "websocket." + message["type"]})

        await send_error(as_socket, error, openai_envelope)
        return
    await send({"type": "websocket.close", "code": POLICY_VIOLATION, "reason": error.message[:120]})


def principal_of(scope: Scope) -> Principal:
    found: Principal = scope.get("state", {}).get("principal", OPEN)
    return found
