"""The native sessions API: create, list, read, continue and delete conversations."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from headend.errors import ModelNotFound, SessionNotFound
from headend.runs.session_turns import new_session_id
from headend.schemas.sessions_api import (
    CreateSession,
    PostMessage,
    Session,
    SessionDeleted,
    SessionList,
    TurnVersion,
)
from headend.schemas.validation import validate
from headend.server.auth import principal_of
from headend.server.json_bodies import decode_json, json_response, read_body
from headend.server.query import query_whole
from headend.server.routes.chat import respond
from headend.server.services import services
from headend.store.base import SessionRecord, TurnRecord

MAX_LIMIT = 100


def _session(
    record: SessionRecord,
    messages: list[dict[str, object]] | None = None,
    turns: list[TurnRecord] | None = None,
) -> Session:
    return Session(
        id=record.id,
        agent=record.agent,
        metadata=record.metadata,
        created_at=int(record.created_at),
        updated_at=int(record.updated_at),
        turns=record.turns,
        messages=messages,
        turn_versions=None
        if turns is None
        else [TurnVersion(turn=t.turn, agent_version=t.agent_version) for t in turns],
    )


async def create_session(request: Request) -> Response:
    found = services(request)
    body = validate(
        CreateSession, decode_json(await read_body(request, found.settings.server.max_body_bytes))
    )
    principal = principal_of(request.scope)
    exists = found.agents.get(body.agent) is not None or found.routes.for_client(body.agent)
    if not exists or not principal.may_use(body.agent):
        raise ModelNotFound(body.agent)
    record = await found.store.create_session(
        new_session_id(), principal.owner, body.agent, body.metadata
    )
    return json_response(_session(record))


async def list_sessions(request: Request) -> Response:
    found = services(request)
    limit = query_whole(request, "limit", 1, MAX_LIMIT) or 20
    owner = principal_of(request.scope).owner
    before = None
    if cursor := request.query_params.get("before"):
        anchor = await found.store.get_session(cursor, owner)
        if anchor is None:
            raise SessionNotFound(cursor)
        before = anchor.updated_at
    records = await found.store.list_sessions(owner, limit + 1, before)
    page = records[:limit]
    return json_response(
        SessionList(data=[_session(r) for r in page], has_more=len(records) > len(page))
    )


async def _record(request: Request) -> SessionRecord:
    session_id = request.path_params["session_id"]
    owner = principal_of(request.scope).owner
    record = await services(request).store.get_session(session_id, owner)
    if record is None:
        raise SessionNotFound(session_id)
    return record


async def retrieve_session(request: Request) -> Response:
    record = await _record(request)
    store = services(request).store
    messages = await store.messages(record.id)
    return json_response(_session(record, messages, await store.turns(record.id)))


async def delete_session(request: Request) -> Response:
    record = await _record(request)
    await services(request).store.delete_session(record.id, record.owner)
    return json_response(SessionDeleted(id=record.id))


async def post_message(request: Request) -> Response:
    record = await _record(request)
    found = services(request)
    message = validate(
        PostMessage, decode_json(await read_body(request, found.settings.server.max_body_bytes))
    )
    body: dict[str, object] = {
        "model": record.agent,
        "messages": [{"role": "user", "content": message.content}],
        "session_id": record.id,
        "stream": message.stream,
    }
    if message.stream_options is not None:
        body["stream_options"] = message.stream_options
    return await respond(request, body)
