"""``/admin/keys``: the same key operations as ``headend keys``, for a key with ``admin``."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from headend.access.keys import (
    KeyLimits,
    KeySettingError,
    Publishable,
    check_agents,
    create_key,
    describe,
    known_names,
    read_guardrails,
    revoke_key,
    rotate_key,
    tool_grant,
)
from headend.agents.registry import unknown_judges
from headend.config import parse_duration
from headend.errors import InvalidRequest, NotFound
from headend.limits.budget import Budget
from headend.runs.usage import usage_entry, utc_day
from headend.schemas.validation import validate
from headend.server.auth import principal_of
from headend.server.json_bodies import decode_json, json_response, read_body
from headend.server.query import query_whole
from headend.server.services import services
from headend.tools.registry import builtin_tools


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] | None = None  # default: chat and models:read (publishable: chat)
    agents: list[str] | None = None
    expires: str | None = None  # a duration: 30d, 12h
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    max_concurrency: int | None = Field(None, ge=1)
    budget: float | None = Field(None, gt=0)  # per budget_period, in the prices' currency
    budget_period: str | None = None  # day, week or month (the default)
    tools: list[str] | None = None  # the agent tools its runs may use (names as agent files)
    no_tools: bool = False
    read_only: bool = False  # only tools that read
    require_approval: bool = False  # its runs' calls that do more than read ask a person first
    publishable: bool = False  # a pk-he- key for the chat widget
    origins: list[str] | None = None  # the sites a publishable key works from
    visitor_rpm: int | None = Field(None, ge=1)
    guardrails: list[Any] | None = None  # checked as an agent file's guardrails: list


async def list_keys(request: Request) -> Response:
    keys = await services(request).store.list_keys()
    return json_response({"object": "list", "data": [describe(k) for k in keys]})


async def post_key(request: Request) -> Response:
    found = services(request)
    body = validate(
        CreateKey, decode_json(await read_body(request, found.settings.server.max_body_bytes))
    )
    registry = builtin_tools(found.settings.mcp_servers.keys())
    if (body.origins or body.visitor_rpm) and not body.publishable:
        raise InvalidRequest(
            "'origins' and 'visitor_rpm' are for publishable keys.", param="origins"
        )
    try:
        expires = parse_duration(body.expires) if body.expires else None
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="expires") from None
    try:
        budget = Budget.of(body.budget, body.budget_period)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="budget_period") from None
    try:
        grant = tool_grant(body.tools, body.no_tools, body.read_only, registry)
        guardrails = read_guardrails(body.guardrails or [])
        problems = unknown_judges(guardrails, found.routes, "guardrails")
        if problems:
            raise KeySettingError(problems[0].removeprefix("guardrails: "), "guardrails")
        known = await known_names(found.store, (a.id for a in found.agents), found.routes.names())
        check_agents(body.agents, known, body.scopes or [])
        limits = KeyLimits(body.rpm, body.tpm, body.max_concurrency, budget)
        publishable = Publishable.of(body.origins, body.visitor_rpm) if body.publishable else None
        issued = await create_key(
            found.store,
            body.name,
            body.scopes or [],
            body.agents,
            expires,
            limits,
            grant,
            publishable,
            by=principal_of(request.scope).key_id,
            require_approval=body.require_approval,
            guardrails=guardrails,
        )
    except KeySettingError as exc:
        raise InvalidRequest(str(exc), param=exc.param) from None
    shown = {**describe(issued.record), "secret": issued.secret}
    if issued.identity_secret is not None:
        shown["identity_secret"] = issued.identity_secret
    return json_response(shown)


async def revoke(request: Request) -> Response:
    key_id = request.path_params["key_id"]
    by = principal_of(request.scope).key_id
    if not await revoke_key(services(request).store, key_id, by=by):
        raise NotFound(f"No active key '{key_id}'.", param="key_id")
    return json_response({"id": key_id, "object": "api_key.revoked", "revoked": True})


async def rotate(request: Request) -> Response:
    key_id = request.path_params["key_id"]
    by = principal_of(request.scope).key_id
    secret = await rotate_key(services(request).store, key_id, by=by)
    if secret is None:
        raise NotFound(f"No active key '{key_id}'.", param="key_id")
    return json_response({"id": key_id, "object": "api_key", "secret": secret})


async def usage(request: Request) -> Response:
    """``GET /admin/usage?days=7&key=key_…``: tokens by day, key and agent or model."""
    days = query_whole(request, "days", 1, 3660) or 7
    since = utc_day(time.time() - (days - 1) * 86400)
    found = services(request)
    await found.meter.flush()  # this instance's latest counts too
    rows = await found.store.usage(since, request.query_params.get("key"))
    return json_response({"object": "list", "data": [usage_entry(row) for row in rows]})
