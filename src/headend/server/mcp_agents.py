"""``/mcp``: every agent a key may call, as a tool of an MCP server (Streamable HTTP, served
by the ``mcp`` SDK's own transport, stateless: any instance answers any request).

- ``tools/list``: the caller's agents — the key's allowlist, as ``/v1/models`` gives them —
  each named by its id (characters a tool name may not have become ``_``), described by its
  file's ``description``, taking a ``message`` and an optional ``session_id``.
- ``tools/call``: the agent runs on the message as a chat request would (the key's tools,
  limits and budget hold); its tools' progress goes out as MCP progress notifications when
  the client asked for them, and the result carries the answer and the ``session_id`` that
  continues the conversation, as text and as ``structuredContent``. A refusal or a failed
  run is a result with ``isError`` and the reason; an unknown tool or bad arguments, a
  JSON-RPC error (-32602), as the MCP specification has it.

The key is the bearer of the HTTP request, checked by the auth middleware before the SDK
sees it; each request's caller is read from its own scope.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import mcp.types as mcp_types
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from headend import __version__
from headend.access.principal import Principal
from headend.agents.loop import ToolProgress
from headend.agents.registry import Agent
from headend.errors import APIError
from headend.server.auth import principal_of
from headend.server.request_record import request_context
from headend.server.services import Services, services

log = logging.getLogger(__name__)

INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
MESSAGE_LIMIT = 100_000  # characters of one message
INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "message": {"type": "string", "description": "What to ask or tell the agent."},
        "session_id": {
            "type": "string",
            "description": "Go on with this conversation: the session_id of an earlier result.",
        },
    },
    "required": ["message"],
    "additionalProperties": False,
}
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "session_id": {"type": ["string", "null"]},
        "waiting_for_approval": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["answer", "session_id"],
}


def tool_name(agent_id: str) -> str:
    return UNSAFE.sub("_", agent_id)[:64]


def callable_agents(found: Services, principal: Principal) -> dict[str, Agent]:
    """The agents this caller may run, by their tool names (the first of a clash wins)."""
    named: dict[str, Agent] = {}
    for agent in found.agents:
        if principal.may_use(agent.id):
            named.setdefault(tool_name(agent.id), agent)
    return named


def _caller(ctx: ServerRequestContext[Any]) -> tuple[Request, Services, Principal]:
    request = ctx.request
    assert isinstance(request, Request), "served over HTTP only"
    return request, services(request), principal_of(request.scope)


async def list_tools(
    ctx: ServerRequestContext[Any], params: mcp_types.PaginatedRequestParams | None
) -> mcp_types.ListToolsResult:
    _, found, principal = _caller(ctx)
    return mcp_types.ListToolsResult(
        tools=[
            mcp_types.Tool(
                name=name,
                title=agent.id,
                description=agent.spec.description or f"The {agent.id} agent.",
                input_schema=INPUT_SCHEMA,
                output_schema=OUTPUT_SCHEMA,
            )
            for name, agent in callable_agents(found, principal).items()
        ]
    )


def _arguments(params: mcp_types.CallToolRequestParams) -> tuple[str, str | None]:
    arguments = params.arguments or {}
    message, session_id = arguments.get("message"), arguments.get("session_id")
    if not isinstance(message, str) or not message.strip():
        raise MCPError(INVALID_PARAMS, "'message' must be a string, not empty.")
    if len(message) > MESSAGE_LIMIT:
        raise MCPError(INVALID_PARAMS, f"'message' is over {MESSAGE_LIMIT} characters.")
    if session_id is not None and not isinstance(session_id, str):
        raise MCPError(INVALID_PARAMS, "'session_id' must be a string.")
    unknown = sorted(set(arguments) - {"message", "session_id"})
    if unknown:
        raise MCPError(INVALID_PARAMS, f"Unknown arguments: {', '.join(unknown)}.")
    return message, session_id


async def call_tool(
    ctx: ServerRequestContext[Any], params: mcp_types.CallToolRequestParams
) -> mcp_types.CallToolResult:
    request, found, principal = _caller(ctx)
    agent = callable_agents(found, principal).get(params.name)
    if agent is None:
        raise MCPError(INVALID_PARAMS, f"Unknown tool: {params.name}")
    message, session_id = _arguments(params)
    steps = 0

    async def progress(event: ToolProgress) -> None:
        nonlocal steps
        steps += 1
        done = " (done)" if event.type == "tool.completed" else ""
        await ctx.session.report_progress(steps, None, f"{event.tool_name}: {event.label}{done}")

    try:
        answer = await found.agent_calls.call(
            agent.id, message, principal, request_context(request), session_id, progress
        )
    except APIError as error:
        text = f"{error.message} ({error.code})" if error.code else error.message
        return mcp_types.CallToolResult(
            content=[mcp_types.TextContent(type="text", text=text)], is_error=True
        )
    except Exception:  # a bug: logged, and not told (the SDK would send its text)
        log.exception("agent %s failed as an MCP tool", agent.id)
        raise MCPError(INTERNAL_ERROR, "The server had an error running the agent.") from None
    structured: dict[str, Any] = {"answer": answer.text, "session_id": answer.session_id}
    if answer.approvals:
        structured["waiting_for_approval"] = answer.approvals
    return mcp_types.CallToolResult(
        content=[mcp_types.TextContent(type="text", text=answer.text)],
        structured_content=structured,
    )


class AgentToolServer:
    """The MCP server and its Streamable HTTP transport; ``running`` goes in the app's
    lifespan (the transport's task group), ``endpoint`` is the ASGI app of ``/mcp``."""

    def __init__(self) -> None:
        server = Server(
            "headend", version=__version__, on_list_tools=list_tools, on_call_tool=call_tool
        )
        # Stateless: no session to keep, so any instance answers; SSE answers carry progress.
        # Host and Origin are not checked here: the key is, before the SDK sees the request.
        self.manager = StreamableHTTPSessionManager(app=server, stateless=True)
        self.endpoint = StreamableHTTPASGIApp(self.manager)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The transport's task group, held by a task of its own: its cancel scope is
        entered and left in one task, whichever tasks start and stop the app."""
        started, stop = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            async with self.manager.run():
                started.set()
                await stop.wait()

        holding = asyncio.create_task(hold())
        waiting = asyncio.create_task(started.wait())
        await asyncio.wait({holding, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if holding.done():  # it could not start: say why
            waiting.cancel()
            holding.result()
        try:
            yield
        finally:
            stop.set()
            await holding


class McpEndpoint:
    """``/mcp``'s ASGI app: the serving app's own MCP server (an instance, not a function,
    so that the router hands it the request's scope as it is)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server: AgentToolServer = scope["app"].state.agent_tools
        await server.endpoint(scope, receive, send)
