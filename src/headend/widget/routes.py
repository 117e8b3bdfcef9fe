"""The widget's own calls: its script, a visitor's token, a visitor's conversation (with the
tool calls in it waiting for their approval) and their answer to one.

``POST /widget/api/visitor`` takes the publishable key in its JSON body (sent as
``text/plain``, so a browser sends it without a CORS preflight): a refusal then reaches the
widget with its reason, whatever site asked.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from headend.access.origins import request_origin
from headend.access.visitor_tokens import MAX_TOKEN
from headend.errors import APIError, ModelNotFound
from headend.runs.approvals import Verdict
from headend.schemas.approvals_api import WidgetApprovalAnswer
from headend.schemas.validation import validate
from headend.server.auth import principal_of
from headend.server.json_bodies import decode_json, json_response, read_body
from headend.server.routes.session_approvals import approval_shape
from headend.server.services import services
from headend.surfaces.fields import content_text

SCRIPT_HEADERS = {
    "Cache-Control": "public, max-age=300",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "cross-origin",  # loaded by other sites' pages
}
MAX_SHOWN = 200  # messages of a conversation the widget shows again


class StartVisit(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    key: str = Field(min_length=1, max_length=512, repr=False)
    token: str | None = Field(None, max_length=MAX_TOKEN, repr=False)  # the visitor's last
    user: str | None = Field(None, min_length=1, max_length=256)
    user_hash: str | None = Field(None, max_length=128)


@cache
def _script() -> bytes:
    return (resources.files("headend.widget") / "static" / "widget.js").read_bytes()


async def widget_script(request: Request) -> Response:
    return Response(_script(), media_type="text/javascript; charset=utf-8", headers=SCRIPT_HEADERS)


async def start_visit(request: Request) -> Response:
    found = services(request)
    headers = request.scope["headers"]
    try:
        body = validate(
            StartVisit,
            decode_json(await read_body(request, found.settings.server.max_body_bytes)),
        )
        client = request.client.host if request.client else None
        started = await found.visitors.start(
            body.key, headers, client, body.token, body.user, body.user_hash
        )
    except APIError as exc:
        origin = request_origin(headers)
        if origin is not None:  # let the widget read why, on any site
            exc.headers = {**exc.headers, "Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        raise
    claims = started.claims
    return json_response(
        {
            "object": "widget.visitor",
            "token": started.token,
            "visitor": claims.visitor,
            "expires_at": int(claims.expires_at),
        }
    )


async def conversation(request: Request) -> Response:
    """The visitor's latest conversation with ``?agent=``: what they and the agent said
    (tool calls and results stay on the server)."""
    found = services(request)
    principal = principal_of(request.scope)
    agent = request.query_params.get("agent", "")
    if not principal.may_use(agent) or found.agents.get(agent) is None:
        raise ModelNotFound(agent)
    sessions = await found.store.list_sessions(principal.owner, 50)
    latest = next((s for s in sessions if s.agent == agent), None)
    shown: list[dict[str, str]] = []
    waiting: list[dict[str, Any]] = []
    if latest is not None:
        for message in await found.store.messages(latest.id):
            text = content_text(message.get("content"))
            if message.get("role") in ("user", "assistant") and text:
                shown.append({"role": message["role"], "content": text})
        for record in await found.store.open_approvals(latest.id):
            if record.status == "pending":
                waiting.append(approval_shape(record).model_dump())
    return json_response(
        {
            "object": "widget.conversation",
            "agent": agent,
            "session_id": latest.id if latest is not None else None,
            "messages": shown[-MAX_SHOWN:],
            "approvals": waiting,  # the calls that wait for the visitor's answer
        }
    )


async def answer_visitor_approval(request: Request) -> Response:
    """``POST /widget/api/approval`` ``{session_id, approval_id, approve, reason}``: the
    visitor answers a call of their own conversation that waits; their next message goes
    on from it. Another visitor's request is unknown to them (404)."""
    found = services(request)
    body = validate(
        WidgetApprovalAnswer,
        decode_json(await read_body(request, found.settings.server.max_body_bytes)),
    )
    verdict = Verdict(body.approval_id, body.approve, body.reason, "approve")
    record = await found.runs.approvals.answer(
        body.session_id, verdict, principal_of(request.scope)
    )
    return json_response(approval_shape(record))
