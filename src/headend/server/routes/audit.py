"""``GET /admin/audit``: the changes made to keys and agents, newest first (admin scope)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from headend.errors import InvalidRequest
from headend.observability.audit_log import known, unknown
from headend.schemas.audit_api import AuditEntryShape, AuditList
from headend.server.json_bodies import json_response
from headend.server.query import query_whole
from headend.server.services import services
from headend.store.base import AuditEntry, AuditQuery

MOST = 1000  # entries in one answer at most


def _action(request: Request) -> str | None:
    """An action, or the family before its dot (``agent``: every ``agent.*``)."""
    action = request.query_params.get("action")
    if action is None or known(action):
        return action
    raise InvalidRequest(unknown(action).capitalize() + ".", param="action")


async def list_audit(request: Request) -> Response:
    """``?limit=100&before=<id>&target=<id>&action=<action or family>&actor=<who>``."""
    limit = query_whole(request, "limit", 1, MOST) or 100
    query = AuditQuery(
        limit=limit + 1,  # one more tells whether there are more
        before=query_whole(request, "before", 1, 2**63 - 1),
        target=request.query_params.get("target"),
        action=_action(request),
        actor=request.query_params.get("actor"),
    )
    entries = await services(request).store.audit(query)
    shown = [entry_shape(entry) for entry in entries[:limit]]
    return json_response(AuditList(data=shown, has_more=len(entries) > limit))


def entry_shape(entry: AuditEntry) -> AuditEntryShape:
    return AuditEntryShape(
        id=entry.id or 0,
        at=round(entry.at, 3),
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        detail=entry.detail,
    )
