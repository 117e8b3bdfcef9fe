"""MCP connectors, through the official ``mcp`` SDK.

Each configured server is one ``McpConnection``: started on first use, reused by every run
after that, and started again when it has died (a crashed stdio process, a dropped HTTP
session): the call that finds it dead fails with a message saying so, and the next starts
it afresh. The SDK's transports are async context managers that must be entered and left in
one task, so each connection keeps a task of its own that holds them open.

Agents list ``mcp:<server>`` (every tool of the server) or ``mcp:<server>/<tool>``; the model
sees them as ``mcp__<server>__<tool>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from headend.config import McpServerSettings
from headend.tools.base import Tool, ToolContext, ToolError
from headend.types import Json

log = logging.getLogger(__name__)

PREFIX = "mcp:"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def model_name(server: str, tool: str) -> str:
    """A name OpenAI accepts for a function: letters, digits, _ and -, at most 64."""
    return _UNSAFE.sub("_", f"mcp__{server}__{tool}")[:64]


@dataclass(frozen=True, slots=True)
class McpRef:
    """``mcp:<server>`` or ``mcp:<server>/<tool>`` in an agent file."""

    server: str
    tool: str | None = None

    @classmethod
    def parse(cls, name: str) -> McpRef:
        server, _, tool = name[len(PREFIX) :].partition("/")
        return cls(server=server, tool=tool or None)


class McpConnection:
    def __init__(self, name: str, settings: McpServerSettings) -> None:
        self.name = name
        self.settings = settings
        self._session: Any = None
        self._tools: list[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._lock = asyncio.Lock()

    async def _open(self) -> Any:
        """The live session, starting (or restarting) the server when there is none."""
        async with self._lock:
            if self._session is not None and self._task is not None and not self._task.done():
                return self._session
            await self._shutdown()
            ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(self._hold(ready, self._stop))
            try:
                self._session = await asyncio.wait_for(ready, self.settings.timeout)
            except Exception as exc:
                await self._shutdown()
                raise ToolError(f"MCP server '{self.name}' did not start: {exc}") from exc
            self._tools = None
            return self._session

    async def _hold(self, ready: asyncio.Future[Any], stop: asyncio.Event) -> None:
        from mcp.client.session import ClientSession

        try:
            async with self._transport() as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                ready.set_result(session)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
            elif not isinstance(exc, asyncio.CancelledError):
                log.warning("MCP server %s stopped: %s", self.name, exc)
        finally:
            self._session = None

    def _transport(self) -> contextlib.AbstractAsyncContextManager[Any]:
        settings = self.settings
        if settings.command is not None:
            from mcp.client.stdio import StdioServerParameters, stdio_client

            return stdio_client(
                StdioServerParameters(
                    command=settings.command,
                    args=settings.args,
                    env=settings.env or None,
                    cwd=settings.cwd,
                ),
                errlog=sys.stderr,
            )
        return self._http_transport()

    @contextlib.asynccontextmanager
    async def _http_transport(self) -> AsyncIterator[Any]:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        assert self.settings.url is not None
        # The server's own proxy, else the environment's (httpx reads HTTPS_PROXY, NO_PROXY).
        async with (
            httpx2.AsyncClient(
                headers=self.settings.headers,
                timeout=self.settings.timeout,
                proxy=self.settings.proxy or None,
            ) as http,
            streamable_http_client(self.settings.url, http_client=http) as streams,
        ):
            yield streams

    async def tools(self) -> list[Any]:
        session = await self._open()
        if self._tools is None:
            self._tools = list((await session.list_tools()).tools)
        return self._tools

    async def call(self, tool: str, arguments: Json) -> str:
        """The tool's text. A server that dies is started afresh for the next call; the call
        that was in flight is not repeated, since it may already have had its effects."""
        session = await self._open()
        try:
            result = await session.call_tool(tool, arguments)
        except Exception as exc:
            if _connection_lost(exc):
                log.warning("MCP server %s went away; it starts again on the next call", self.name)
                async with self._lock:
                    await self._shutdown()
                raise ToolError(
                    f"MCP server '{self.name}' went away during the call; it will be started "
                    "again, so the call may be tried again"
                ) from exc
            raise ToolError(f"MCP server '{self.name}': {type(exc).__name__}: {exc}") from exc
        text = _text_of(result)
        if getattr(result, "is_error", False):
            raise ToolError(text or f"{tool} failed")
        return text

    async def _shutdown(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5)
            except (TimeoutError, Exception):
                self._task.cancel()
        self._task = None
        self._session = None

    async def close(self) -> None:
        async with self._lock:
            await self._shutdown()


def _connection_lost(exc: Exception) -> bool:
    """Whether a call failed because the server went away (and a restart may help)."""
    import anyio
    from mcp_types import CONNECTION_CLOSED

    if isinstance(exc, anyio.ClosedResourceError | anyio.BrokenResourceError | anyio.EndOfStream):
        return True
    error = getattr(exc, "error", None)
    return getattr(error, "code", None) == CONNECTION_CLOSED


def _text_of(result: Any) -> str:
    parts = []
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        parts.append(getattr(block, "text", "") if kind == "text" else f"[{kind} content]")
    return "\n".join(parts)


class McpTool:
    """One MCP tool, offered to the model like any other."""

    def __init__(self, connection: McpConnection, spec: Any) -> None:
        self.connection = connection
        self.tool = str(spec.name)
        self.name = model_name(connection.name, self.tool)
        self.ref = f"mcp:{connection.name}/{self.tool}"
        annotations = getattr(spec, "annotations", None)
        self.read_only = getattr(annotations, "read_only_hint", None) is True
        # the server says a repeat does no more than the first call
        self.idempotent = getattr(annotations, "idempotent_hint", None) is True
        self.description = str(getattr(spec, "description", None) or self.tool)
        schema = getattr(spec, "input_schema", None) or getattr(spec, "inputSchema", None)
        self.parameters: Json = dict(schema) if schema else {"type": "object", "properties": {}}
        self.timeout = connection.settings.timeout

    async def run(self, arguments: Json, context: ToolContext) -> str:
        return await self.connection.call(self.tool, arguments)

    def label(self, arguments: Json) -> str:
        return f"{self.connection.name}/{self.tool}"

    def repeatable(self, arguments: Json) -> bool:
        return self.read_only or self.idempotent


class McpHub:
    """Every configured MCP server, none started until an agent needs it."""

    def __init__(self, servers: Mapping[str, McpServerSettings]) -> None:
        self.connections = {name: McpConnection(name, s) for name, s in servers.items()}

    async def tools(self, refs: list[McpRef]) -> list[Tool]:
        found: list[Tool] = []
        for ref in refs:
            connection = self.connections[ref.server]
            try:
                specs = await connection.tools()
            except ToolError as exc:
                log.warning("%s", exc)
                continue
            for spec in specs:
                if ref.tool is None or spec.name == ref.tool:
                    found.append(McpTool(connection, spec))
        return found

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.connections.values()))
