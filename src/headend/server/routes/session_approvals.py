"""A session's tool calls waiting for approval, for the wires that have no standard for it
(Chat Completions, Messages) and for the console: ``GET /v1/sessions/{id}/approvals`` lists
them, ``POST /v1/sessions/{id}/approvals/{approval_id}`` answers one (``{"approve": true}``,
or false with a ``reason``); the session's next turn goes on from the answers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from headend.errors import SessionNotFound
from headend.runs.approvals import Verdict
from headend.schemas.approvals_api import ApprovalAnswer, ApprovalList, ApprovalShape
from headend.schemas.validation import validate
from headend.server.auth import principal_of
from headend.server.json_bodies import decode_json, json_response, read_body
from headend.server.query import query_whole
from headend.server.services import services
from headend.store.base import ApprovalRecord

MOST = 100


async def list_approvals(request: Request) -> Response:
    """``?limit=20``: the session's latest approval requests, oldest first. The session's
    owner sees them, and an admin, who may answer them, sees any session's."""
    found = services(request)
    session_id = request.path_params["session_id"]
    principal = principal_of(request.scope)
    mine = await found.store.get_session(session_id, principal.owner) is not None
    if not mine and not principal.has("admin"):
        raise SessionNotFound(session_id)
    limit = query_whole(request, "limit", 1, MOST) or 20
    records = await found.store.session_approvals(session_id, limit)
    return json_response(ApprovalList(data=[approval_shape(r) for r in records]))


async def answer_approval(request: Request) -> Response:
    found = services(request)
    body = validate(
        ApprovalAnswer, decode_json(await read_body(request, found.settings.server.max_body_bytes))
    )
    approval_id = request.path_params["approval_id"]
    verdict = Verdict(approval_id, body.approve, body.reason, "approve")
    record = await found.runs.approvals.answer(
        request.path_params["session_id"], verdict, principal_of(request.scope)
    )
    return json_response(approval_shape(record))


def approval_shape(record: ApprovalRecord) -> ApprovalShape:
    return ApprovalShape(
        id=record.id,
        session_id=record.session_id,
        agent=record.agent,
        server_label=record.server_label,
        name=record.name,
        tool=record.ref,
        arguments=record.arguments,
        status=record.status,
        created_at=record.created_at,
        expires_at=record.expires_at,
        decided_at=record.decided_at,
        decided_by=record.decided_by,
        reason=record.reason,
        applied=record.applied_at is not None,
    )
