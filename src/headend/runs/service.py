"""Serving chat completions: a ``model`` names an agent or a model route; either way the
request becomes an upstream call made by the router, and the answer goes back with the
client's ``model`` name.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from headend.access.principal import OPEN, Principal, check_draft_access
from headend.access.visitor_request import visitor_request
from headend.agents.compose import agent_body, max_iterations
from headend.agents.loop import Run, ToolLoop, ToolProgress, add_usage
from headend.agents.registry import Agent
from headend.agents.versions import AgentVersions
from headend.errors import InvalidRequest, ModelNotFound
from headend.observability.genai import agent_span
from headend.observability.tracing import Span
from headend.pricing import Spend
from headend.providers.base import ChatCall
from headend.providers.model_routes import RouteTable, Target
from headend.providers.reply import Reply
from headend.providers.router import Router
from headend.runs.admission import Admission, Ticket
from headend.runs.record import RunRecord
from headend.runs.sessions import (
    SessionService,
    SessionTurn,
    counting_with,
    estimate_tokens,
    trim,
)
from headend.schemas.openai.chat import ChatCompletionRequest, ProgressFormat
from headend.schemas.validation import validate
from headend.surfaces.agent_chunks import (
    DONE_FRAME,
    Frames,
    chunk_frames,
    loop_chunks,
    loop_completion,
)
from headend.tools.mcp import McpHub
from headend.tools.policy import EVERY_TOOL, ToolPolicy
from headend.types import Json

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Plan:
    """A validated request, ready to run."""

    client_model: str  # as the request named it: ``support@3`` answers as ``support@3``
    targets: tuple[Target, ...]
    call: ChatCall
    stream: bool
    include_usage: bool
    prepended: int = 0  # messages an agent put before the client's
    run: Run | None = None  # an agent with tools runs the tool loop
    progress: ProgressFormat | None = None
    session: SessionTurn | None = None
    agent: Agent | None = None  # None: a plain model route
    ticket: Ticket | None = None  # admitted by the limits; given back by ``release``
    frames: Frames | None = None  # an agent stream's chunk shapes
    released: bool = False
    ignored: tuple[str, ...] = ()  # a widget visitor's fields the agent overrides
    agent_span: Span | None = None  # an agent's run, traced from admission to release

    @property
    def agent_version(self) -> int | None:
        """The version of the agent answering (None: a model route, or not recorded)."""
        if self.agent is None or not self.agent.version:
            return None
        return self.agent.version

    @property
    def configured(self) -> str:
        """The agent's id or the route's name: what sessions, limits and usage go by."""
        return self.agent.id if self.agent is not None else self.client_model

    @property
    def headers(self) -> dict[str, str]:
        """Response headers: the session's id, the key's rate limit state and what of a
        widget visitor's request was ignored."""
        headers = dict(self.ticket.headers) if self.ticket is not None else {}
        if self.session is not None:
            headers["x-session-id"] = self.session.session_id
        if self.ignored:
            headers["x-headend-ignored-fields"] = ", ".join(self.ignored)
        return headers

    @property
    def spend(self) -> Spend:
        assert self.call.spend is not None  # every plan's call counts it
        return self.call.spend

    def count_usage(self, usage: object) -> None:
        """The request's usage as last reported (a stream reports it in its last chunk)."""
        if self.ticket is not None and isinstance(usage, dict):
            self.ticket.usage = {}
            add_usage(self.ticket.usage, usage)


_MESSAGE_PARAM = re.compile(r"^messages\[(\d+)\]")


def in_client_terms(error: InvalidRequest, prepended: int) -> InvalidRequest:
    """An upstream's complaint about ``messages[i]`` names the client's own message index."""
    param = error.param or ""
    match = _MESSAGE_PARAM.match(param) if prepended else None
    if match is not None and int(match.group(1)) >= prepended:
        error.param = f"messages[{int(match.group(1)) - prepended}]{param[match.end() :]}"
    return error


def _passthrough_checks(body: Json) -> None:
    """The little a plain model route checks itself; the upstream validates the rest."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(
            "'messages' must be a non-empty array of messages.",
            param="messages",
            code="invalid_value",
        )
    if "stream" in body and not isinstance(body["stream"], bool | None):
        raise InvalidRequest("'stream' must be a boolean.", param="stream", code="invalid_type")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest(
            "'stream_options' must be an object.", param="stream_options", code="invalid_type"
        )


# headend's own request fields, never sent to an upstream
HEADEND_FIELDS = ("max_iterations", "session_id")
HEADEND_STREAM_OPTIONS = ("include_tool_progress", "tool_progress_format")
PROGRESS_HEADERS = ("x-tool-progress", "x-hermes-tool-progress")


def without_headend_fields(body: Json) -> Json:
    options = body.get("stream_options")
    if not any(key in body for key in HEADEND_FIELDS) and not (
        isinstance(options, dict) and any(key in options for key in HEADEND_STREAM_OPTIONS)
    ):
        return body
    body = {key: value for key, value in body.items() if key not in HEADEND_FIELDS}
    if isinstance(options, dict):
        body["stream_options"] = {
            k: v for k, v in options.items() if k not in HEADEND_STREAM_OPTIONS
        }
    return body


def progress_format(
    request: ChatCompletionRequest, headers: Mapping[str, str]
) -> ProgressFormat | None:
    """Tool progress frames are off unless stream_options or a header asks for them."""
    options = request.stream_options
    chosen = options.tool_progress_format if options else None
    asked = (
        bool(options and options.include_tool_progress)
        or chosen is not None
        or any(headers.get(name, "").strip().lower() in ("1", "true") for name in PROGRESS_HEADERS)
    )
    return (chosen or "event") if asked else None


def _include_usage(body: Json) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


class ChatService:
    def __init__(
        self,
        versions: AgentVersions,
        routes: RouteTable,
        router: Router,
        mcp: McpHub,
        sessions: SessionService,
        admission: Admission,
    ) -> None:
        self.versions = versions
        self.routes = routes
        self.router = router
        # an agent another one calls as a tool runs at its current version
        self.loop = ToolLoop(router, versions.agents.get, mcp)
        self.sessions = sessions
        self.admission = admission

    async def plan(
        self,
        body: Any,
        context: RunRecord,
        headers: Mapping[str, str] | None = None,
        principal: Principal = OPEN,
        *,
        keep: bool = False,
    ) -> Plan:
        """Validate the request and, last, open its session turn (the only step that waits)."""
        headers = headers or {}
        ignored: list[str] = []
        if principal.visitor is not None:
            body, ignored = visitor_request(body)
        agent = await self._agent(body, principal)
        plan = self._plan(body, context, headers, agent, principal.tools)
        if principal.visitor is not None and plan.agent is None:
            raise ModelNotFound(plan.client_model)  # a visitor talks to agents only
        plan.ignored = tuple(ignored)
        session_id = body.get("session_id") or headers.get("x-session-id") or None
        if not isinstance(session_id, str | None):
            raise InvalidRequest("'session_id' must be a string.", param="session_id")
        try:
            # The session first: a turn waiting for its session's previous one holds no slot.
            await self._begin_session(plan, session_id, principal, keep)
            plan.ticket = await self.admission.admit(
                principal, plan.configured, self._agent_limit(plan), context
            )
            plan.ticket.spend = plan.spend
            plan.ticket.price = self.router.price(plan.targets[0])
            self._trace(plan, context.span)
        except BaseException:
            await self.release(plan)
            raise
        return plan

    async def count_tokens(
        self, body: Json, context: RunRecord, principal: Principal = OPEN
    ) -> int:
        """The prompt's tokens as the first route would see them (the agent's prompt
        included), by its own tokenizer where it has one."""
        plan = self._plan(body, context, {}, await self._agent(body, principal))
        count = self._counter(plan)
        messages = plan.call.body["messages"]
        tools = plan.call.body.get("tools")

        def total() -> int:
            extra = len(orjson.dumps(tools)) // 3 if tools else 0
            return sum(count(message) for message in messages) + extra

        return await asyncio.to_thread(total)

    async def _agent(self, body: Any, principal: Principal) -> Agent | None:
        """The agent (at the version) the request's ``model`` names, if it names one; a name
        the key may not use is reported exactly as if it did not exist."""
        name = body.get("model") if isinstance(body, dict) else None
        if not isinstance(name, str):
            return None
        check_draft_access(name, principal)
        agent = await self.versions.resolve(name)
        if not principal.may_use(agent.id if agent is not None else name):
            raise ModelNotFound(name)
        if principal.visitor is not None and agent is not None and name != agent.id:
            # A widget visitor talks to the version served now: an earlier one, perhaps
            # replaced for what it said, is not the public's to pick.
            raise ModelNotFound(name)
        return agent

    def _counter(self, plan: Plan) -> Callable[[Json], int]:
        """Message sizes by the first route's own tokenizer, or estimated without one."""
        counter = self.router.providers[plan.targets[0].provider].token_counter()
        return counting_with(counter) if counter is not None else estimate_tokens

    @staticmethod
    def _trace(plan: Plan, parent: Span) -> None:
        """Model calls go under the request's span, or under the agent's run."""
        span = parent
        if plan.agent is not None:
            session = plan.session.session_id if plan.session is not None else None
            span = plan.agent_span = agent_span(parent, plan.agent.id, session, plan.agent_version)
        plan.call.span = span
        if plan.run is not None:
            plan.run.span = span

    def _agent_limit(self, plan: Plan) -> int | None:
        if plan.agent is None:
            return None
        return plan.agent.spec.max_concurrency or self.admission.limits.agent_concurrency

    async def _begin_session(
        self, plan: Plan, session_id: str | None, principal: Principal, keep: bool
    ) -> None:
        if session_id is None and not keep and plan.agent is None:
            return  # a plain model route stays stateless unless asked to keep or continue
        head = plan.call.body["messages"][: plan.prepended]  # the agent's own prompt
        sent = plan.call.body["messages"][plan.prepended :]
        turn = await self.sessions.begin(session_id, plan.configured, sent, owner=principal.owner)
        if turn.history:
            system = [*head, *(m for m in sent if m.get("role") in ("system", "developer"))]
            messages = await self._fit(plan, system, turn)
            plan.call.body = {**plan.call.body, "messages": messages}
            if plan.run is not None:
                plan.run.body = plan.call.body
            plan.prepended = 0  # indices now point into the stored history too
        plan.session = turn

    async def _fit(self, plan: Plan, system: list[Json], turn: SessionTurn) -> list[Json]:
        """The turn's messages, trimmed to the smallest context window among its routes,
        counted with the first route's tokenizer where it has one."""
        providers = [self.router.providers[target.provider] for target in plan.targets]
        windows = [p.context_window for p in providers if p.context_window]
        if not windows:
            return turn.messages(system)
        window = min(windows)
        asked = plan.call.body.get("max_completion_tokens") or plan.call.body.get("max_tokens")
        reserve = asked if isinstance(asked, int) else min(window // 4, 4096)
        return await asyncio.to_thread(
            trim, system, turn.history, turn.added, max(window - reserve, 0), self._counter(plan)
        )

    def _plan(
        self,
        body: Any,
        context: RunRecord,
        headers: Mapping[str, str],
        agent: Agent | None,
        tools: ToolPolicy = EVERY_TOOL,
    ) -> Plan:
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(
                "Missing required parameter: 'model'.",
                param="model",
                code="missing_required_parameter",
            )
        run: Run | None = None
        progress: ProgressFormat | None = None
        spend = Spend()  # every model call's cost, the tool loop's included
        if agent is not None:
            request = validate(ChatCompletionRequest, body)
            if request.unknown_fields():
                log.debug("ignoring unknown chat fields: %s", ", ".join(request.unknown_fields()))
            upstream, targets = agent_body(agent, request), agent.targets
            prepended = len(upstream["messages"]) - len(request.messages)
            if agent.acts:
                run = Run(
                    agent=agent,
                    body=upstream,
                    max_iterations=max_iterations(agent.spec, request.max_iterations),
                    timer=context.timer,
                    request_id=context.request_id,
                    tools=tools,
                    spend=spend,
                )
                progress = progress_format(request, headers or {})
        else:
            found = self.routes.for_client(name)
            if found is None:
                raise ModelNotFound(name)
            _passthrough_checks(body)
            upstream, targets, prepended = without_headend_fields(body), found, 0
        # a configured name (an agent's id, not its version): bounded, so it may label metrics
        context.model = agent.id if agent is not None else name
        call = ChatCall(
            body=upstream, timer=context.timer, request_id=context.request_id, spend=spend
        )
        return Plan(
            client_model=name,
            targets=targets,
            call=call,
            stream=body.get("stream") is True,
            include_usage=_include_usage(body),
            prepended=prepended,
            run=run,
            progress=progress,
            agent=agent,
        )

    async def complete(self, plan: Plan) -> bytes:
        return orjson.dumps(await self.answer(plan))

    async def answer(self, plan: Plan) -> Json:
        """The ``chat.completion`` for a plan (every surface translates from it)."""
        try:
            if plan.run is not None:
                end = await self.loop.finish(plan.run)
                answer, produced = loop_completion(end, plan.client_model), end.messages
                plan.count_usage(end.usage)
            else:
                answer, _target = await self.router.complete(plan.targets, plan.call)
                answer["model"] = plan.client_model
                plan.count_usage(answer.get("usage"))
                produced = [stored_message(answer["choices"][0]["message"])]
            if plan.session is not None:
                await self.sessions.commit(plan.session, produced, plan.agent_version)
                answer["session_id"] = plan.session.session_id
            return answer
        except InvalidRequest as exc:
            raise in_client_terms(exc, plan.prepended) from None
        finally:
            await self.release(plan)

    async def release(self, plan: Plan) -> None:
        """Let the session's next turn in and give the slots back: once, however it ended."""
        if plan.released:
            return
        plan.released = True
        if plan.agent_span is not None:
            plan.agent_span.end()
        if plan.session is not None:
            await self.sessions.end(plan.session)
        if plan.ticket is not None:
            messages = plan.call.body["messages"]
            await self.admission.leave(
                plan.ticket, lambda: sum(estimate_tokens(m) for m in messages)
            )

    async def stream(self, plan: Plan) -> AsyncGenerator[bytes, None]:
        """SSE frames of the chat completion chunks, relayed as they arrive."""
        async for event in self.events(plan):
            if isinstance(event, ToolProgress):
                if plan.progress is not None and plan.frames is not None:
                    yield plan.frames.progress_frame(event)
            elif event:
                yield chunk_frames(event)
        yield DONE_FRAME

    async def events(self, plan: Plan) -> AsyncGenerator[list[Json] | ToolProgress, None]:
        """Batches of ``chat.completion.chunk`` as they arrive, and tool progress (every
        surface translates from these). Upstreams are always asked for usage; the chunks
        carry it only if ``plan.include_usage``."""
        try:
            if plan.run is not None:
                async for event in self._loop_stream(plan):
                    yield event
            else:
                async for batch in self._relay(plan):
                    yield batch
        except InvalidRequest as exc:
            raise in_client_terms(exc, plan.prepended) from None
        finally:
            await self.release(plan)

    async def chunks(self, plan: Plan) -> AsyncGenerator[list[Json], None]:
        """``events`` without tool progress: what the other API surfaces translate."""
        async for event in self.events(plan):
            if isinstance(event, list) and event:
                yield event

    async def _loop_stream(self, plan: Plan) -> AsyncGenerator[list[Json] | ToolProgress, None]:
        assert plan.run is not None
        shape = plan.frames = Frames(plan.client_model, plan.include_usage, plan.progress)
        if plan.session is not None:
            shape.session_id = plan.session.session_id
        async for event in loop_chunks(self.loop.stream(plan.run), shape):
            yield event
        plan.count_usage(shape.usage)
        if plan.session is not None:
            await self.sessions.commit(plan.session, shape.produced, plan.agent_version)

    async def _relay(self, plan: Plan) -> AsyncGenerator[list[Json], None]:
        reply = Reply()
        first = True
        batches = self.router.stream(plan.targets, plan.call)
        try:
            async for batch in batches:
                frames = []
                for chunk in batch:
                    reply.absorb(chunk)
                    if chunk.get("usage"):
                        plan.count_usage(chunk["usage"])
                    if not chunk.get("choices") and chunk.get("usage"):
                        if not plan.include_usage:
                            continue
                    elif not plan.include_usage:
                        chunk.pop("usage", None)
                    chunk["model"] = plan.client_model
                    if first and plan.session is not None:
                        chunk["session_id"] = plan.session.session_id
                    first = False
                    frames.append(chunk)
                if frames:
                    yield frames
        finally:
            await batches.aclose()
        if plan.session is not None:
            await self.sessions.commit(plan.session, [reply.message()], plan.agent_version)


def stored_message(message: Json) -> Json:
    """An answer as the conversation keeps it: no null fields."""
    return {key: value for key, value in message.items() if value is not None}
