"""``/admin/agents``: agents, their versions, drafts and publishing, for a key with
``agents:write`` (or ``admin``). A key limited to some agents manages only those."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from headend.agents.registry import API, FILE, Agent
from headend.agents.spec import compose_agent_text
from headend.agents.versions import DRAFT
from headend.errors import InsufficientScope, InvalidRequest, NotFound
from headend.schemas.agents_api import (
    AgentDiff,
    AgentEntry,
    AgentList,
    AgentVersionEntry,
    AgentVersionList,
    PublishAgent,
)
from headend.schemas.validation import json_object, validate
from headend.server.auth import principal_of
from headend.server.json_bodies import decode_json, json_response, read_body
from headend.server.services import Services, services
from headend.store.base import StoredAgent


def _when(at: float | None) -> int | None:
    return None if at is None else int(at)


def _entry(agent_id: str, current: Agent | None, stored: StoredAgent | None) -> AgentEntry:
    """An agent as served (``current``) and, for one created through the API, as stored (a
    file's agent is shown as its file has it, whatever the store holds under its id)."""
    if current is not None and current.origin == FILE:
        stored = None
    entry = AgentEntry(
        id=agent_id,
        origin=FILE if stored is None else API,
        version=current.version or None if current is not None else None,
        description=current.spec.description if current is not None else None,
        content=current.content if current is not None else None,
    )
    if stored is None:
        return entry
    return entry.model_copy(
        update={
            "draft": stored.draft,
            "draft_by": stored.draft_by,
            "draft_at": _when(stored.draft_at),
            "published_by": stored.published_by,
            "published_at": _when(stored.published_at),
            "created_by": stored.created_by,
            "created_at": _when(stored.created_at),
        }
    )


def _agent_id(request: Request) -> str:
    """The path's agent, if the key may manage it (another is as if it did not exist)."""
    agent_id: str = request.path_params["agent_id"]
    if not principal_of(request.scope).may_use(agent_id):
        raise NotFound(f"No agent '{agent_id}'.", param="agent_id")
    return agent_id


async def _body(request: Request, found: Services) -> Any:
    raw = await read_body(request, found.settings.server.max_body_bytes)
    return decode_json(raw) if raw.strip() else {}


async def _answer(found: Services, agent_id: str) -> Response:
    stored = await found.editor.stored(agent_id)
    return json_response(_entry(agent_id, found.agents.get(agent_id), stored))


async def list_managed_agents(request: Request) -> Response:
    """``GET /admin/agents``: every agent, from files and from the API."""
    found = services(request)
    principal = principal_of(request.scope)
    stored = {s.id: s for s in await found.store.stored_agents()}
    ids = sorted({agent.id for agent in found.agents} | set(stored))
    entries = [
        _entry(agent_id, found.agents.get(agent_id), stored.get(agent_id))
        for agent_id in ids
        if principal.may_use(agent_id)
    ]
    return json_response(AgentList(data=entries))


async def create_agent(request: Request) -> Response:
    """``POST /admin/agents``: ``{"id", "content"}`` or ``{"id", <front matter>, "prompt"}``;
    the definition is the new agent's draft."""
    found = services(request)
    body = json_object(await _body(request, found))
    agent_id = body.pop("id", None)
    if not isinstance(agent_id, str):
        raise InvalidRequest(
            "Missing required parameter: 'id' (the new agent's id).",
            param="id",
            code="missing_required_parameter",
        )
    principal = principal_of(request.scope)
    if not principal.may_use(agent_id):
        raise InsufficientScope(
            f"This key manages only its own agents; '{agent_id}' is not one of them.", param="id"
        )
    await found.editor.create(agent_id, definition_text(body), principal.key_id)
    return await _answer(found, agent_id)


async def retrieve_agent(request: Request) -> Response:
    found = services(request)
    agent_id = _agent_id(request)
    current = found.agents.get(agent_id)
    if current is not None and current.origin == FILE:
        return json_response(_entry(agent_id, current, None))
    return await _answer(found, agent_id)


async def save_draft(request: Request) -> Response:
    """``PUT /admin/agents/{id}/draft``: the same body as creating one, without the id."""
    found = services(request)
    agent_id = _agent_id(request)
    body = json_object(await _body(request, found))
    if "id" in body:
        raise InvalidRequest("The agent's id is in the path; leave 'id' out.", param="id")
    text = definition_text(body)
    await found.editor.save_draft(agent_id, text, principal_of(request.scope).key_id)
    return await _answer(found, agent_id)


async def discard_draft(request: Request) -> Response:
    found = services(request)
    agent_id = _agent_id(request)
    await found.editor.save_draft(agent_id, None, principal_of(request.scope).key_id)
    return await _answer(found, agent_id)


async def publish(request: Request) -> Response:
    """``POST /admin/agents/{id}/publish``: the draft becomes the next version and is served;
    ``{"version": 2}`` serves version 2 again (a rollback)."""
    found = services(request)
    agent_id = _agent_id(request)
    asked = validate(PublishAgent, await _body(request, found))
    await found.editor.publish(agent_id, asked.version, principal_of(request.scope).key_id)
    return await _answer(found, agent_id)


async def delete_agent(request: Request) -> Response:
    found = services(request)
    agent_id = _agent_id(request)
    await found.editor.delete(agent_id, principal_of(request.scope).key_id)
    return json_response({"id": agent_id, "object": "agent.deleted", "deleted": True})


async def list_versions(request: Request) -> Response:
    """``GET /admin/agents/{agent_id}/versions``: newest first, with each one's text."""
    found = services(request)
    agent_id = _agent_id(request)
    versions = await found.store.agent_versions(agent_id)
    current = found.agents.get(agent_id)
    if not versions:
        raise NotFound(f"No agent '{agent_id}' has been recorded.", param="agent_id")
    served = current.version if current is not None else None
    return json_response(
        AgentVersionList(
            data=[
                AgentVersionEntry(
                    agent=v.agent,
                    version=v.version,
                    origin=v.origin,
                    created_by=v.created_by,
                    created_at=int(v.created_at),
                    served=v.version == served,
                    content=v.content,
                )
                for v in versions
            ]
        )
    )


def _side(request: Request, name: str, default: int | str | None) -> int | str:
    value = request.query_params.get(name)
    if value is None:
        if default is None:
            raise InvalidRequest(
                f"Missing required parameter: '{name}' (a version, or 'draft').",
                param=name,
                code="missing_required_parameter",
            )
        return default
    if value == DRAFT:
        return DRAFT
    if not value.isdigit() or int(value) < 1:
        raise InvalidRequest(f"'{name}' must be a version number or 'draft'.", param=name)
    return int(value)


async def diff(request: Request) -> Response:
    """``GET /admin/agents/{id}/diff?before=2&after=draft``: a unified diff; ``before``
    defaults to the version served, ``after`` to the draft."""
    found = services(request)
    agent_id = _agent_id(request)
    current = found.agents.get(agent_id)
    before = _side(request, "before", current.version if current and current.version else None)
    after = _side(request, "after", DRAFT)
    text = await found.editor.diff(agent_id, before, after)
    return json_response(AgentDiff(agent=agent_id, before=str(before), after=str(after), diff=text))


def definition_text(body: dict[str, Any]) -> str:
    """An agent's definition from a request: ``content`` (an agent file's whole text), or
    the front matter's keys with ``prompt`` (the file's body)."""
    fields = dict(body)
    if "content" in fields:
        content = fields.pop("content")
        if not isinstance(content, str):
            raise InvalidRequest(
                "'content' must be a string: an agent file's text (front matter and prompt).",
                param="content",
                code="invalid_type",
            )
        if fields:
            raise InvalidRequest(
                "Send either 'content' (an agent file's text) or the front matter's keys "
                f"with 'prompt', not both: {', '.join(sorted(fields))}.",
                param=sorted(fields)[0],
            )
        return content
    prompt = fields.pop("prompt", "")
    if not isinstance(prompt, str):
        raise InvalidRequest(
            "'prompt' must be a string: the agent's system prompt.",
            param="prompt",
            code="invalid_type",
        )
    return compose_agent_text(fields, prompt)
