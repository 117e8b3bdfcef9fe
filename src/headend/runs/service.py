"""Runs: a chat request's ``model`` names an agent or a model route; either way it becomes a
``Run`` (``start``), whose events (``events``) are the tool loop's or the router's, under
the client's ``model`` name, until it is released (``release``, once, however it ended).
Every API surface starts its requests here as chat requests and frames the events itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import replace
from typing import Any

import orjson

from headend.access.principal import OPEN, Principal, check_draft_access
from headend.access.visitor_request import visitor_request
from headend.agents.compose import agent_body, max_iterations
from headend.agents.knowledge_files import KnowledgeSpec
from headend.agents.loop import LoopCall, LoopEnd, ToolLoop, ToolProgress
from headend.agents.registry import Agent
from headend.agents.spec import AgentSpec
from headend.agents.versions import AgentVersions
from headend.errors import InvalidRequest, ModelNotFound, ServiceUnavailable, UnsupportedValue
from headend.guardrails.checks import Blocked
from headend.guardrails.guard import Unavailable
from headend.knowledge.agent_sync import agent_store_id
from headend.knowledge.documents import Caller, Knowledge
from headend.knowledge.search import SearchOptions, Weights
from headend.observability.genai import agent_span
from headend.observability.tracing import Span
from headend.pricing import Spend
from headend.providers.base import ChatCall
from headend.providers.model_routes import RouteTable
from headend.providers.reply import Reply
from headend.providers.router import Router
from headend.runs.admission import Admission
from headend.runs.approvals import ApprovalNotFound, Approvals, Verdict
from headend.runs.chat_fields import (
    in_client_terms,
    include_usage,
    passthrough_checks,
    progress_format,
    stored_message,
    without_headend_fields,
)
from headend.runs.events import Completion, RunEvent
from headend.runs.guarding import (
    NO_USAGE,
    GuardedStream,
    Guardrails,
    Refusal,
    refusal_chunks,
    refusal_completion,
    restored_messages,
    screened,
)
from headend.runs.record import RunRecord
from headend.runs.run import Run
from headend.runs.session_turns import (
    SessionService,
    SessionTurn,
    counting_with,
    estimate_tokens,
    trim,
)
from headend.schemas.openai.chat_api import ChatCompletionRequest
from headend.schemas.openai.vector_stores_api import FileSearchTool, filter_wire
from headend.schemas.validation import validate
from headend.store.knowledge import Owner
from headend.surfaces.agent_chunks import Frames, loop_chunks, loop_completion
from headend.tools.approval_policy import ApprovalPolicy
from headend.tools.builtin.file_search import FileSearch
from headend.tools.mcp import McpHub
from headend.tools.policy import EVERY_TOOL, ToolPolicy
from headend.types import Json

log = logging.getLogger(__name__)

ROUTE_TOOL_ROUNDS = 8  # a model route's rounds of file_search calls before it must answer


class RunService:
    def __init__(
        self,
        versions: AgentVersions,
        routes: RouteTable,
        router: Router,
        mcp: McpHub,
        sessions: SessionService,
        admission: Admission,
        approvals: Approvals,
        knowledge: Knowledge | None = None,
        guardrails: Guardrails | None = None,
    ) -> None:
        self.knowledge = knowledge  # what runs the file_search tool
        self.guardrails = guardrails
        self.versions = versions
        self.routes = routes
        self.router = router
        # an agent another one calls as a tool runs at its current version
        self.loop = ToolLoop(router, versions.agents.get, mcp)
        self.sessions = sessions
        self.admission = admission
        self.approvals = approvals

    async def start(
        self,
        body: Any,
        context: RunRecord,
        headers: Mapping[str, str] | None = None,
        principal: Principal = OPEN,
        *,
        keep: bool = False,
        new_session: str | None = None,
        slots_later: bool = False,
        verdicts: list[Verdict] | None = None,
        file_search: FileSearchTool | None = None,
        file_search_param: str = "tools",
    ) -> Run:
        """Validate the request and, last, open its session turn (on a new session called
        ``new_session``, if given) and take its slots (the only steps that wait). A
        background run (``slots_later``) is checked against the key's budget and rates now
        and takes its slots when it runs (``take_slots``). ``verdicts``: answers to the
        calls the session's last turn asked approval for."""
        headers = headers or {}
        ignored: list[str] = []
        if principal.visitor is not None:
            body, ignored = visitor_request(body)
        agent = await self._agent(body, principal)
        run = self._run(
            body,
            context,
            headers,
            agent,
            principal.tools,
            principal.require_approval,
            answering=bool(verdicts),
        )
        run.owner = principal.owner
        if file_search is not None:
            await self._search_files(run, file_search, file_search_param, principal)
        if agent is not None and agent.spec.knowledge is not None:
            await self._agent_knowledge(run, agent.spec.knowledge, principal)
        if principal.visitor is not None:
            if run.agent is None:
                raise ModelNotFound(run.client_model)  # a visitor talks to agents only
            run.approvals_as_text = False  # the widget shows them as cards, not an API call
        run.ignored = tuple(ignored)
        session_id = body.get("session_id") or headers.get("x-session-id") or None
        if not isinstance(session_id, str | None):
            raise InvalidRequest("'session_id' must be a string.", param="session_id")
        head = run.prepended  # the agent's own messages, first whatever the session adds
        try:
            # The session first: a turn waiting for its session's previous one holds no slot.
            await self._begin_session(run, session_id, principal, keep, new_session)
            if run.loop is not None and run.session is not None:
                run.loop.answers = await self.approvals.settle(
                    run.session, verdicts or [], principal
                )
            elif verdicts:
                raise ApprovalNotFound(
                    "There is no approval request to answer: this conversation has none.",
                    param=verdicts[0].param,
                )
            run.ticket = await self.admission.admit(
                principal, run.configured, self._agent_limit(run), context, slots=not slots_later
            )
            run.ticket.spend = run.spend
            run.ticket.price = self.router.price(run.targets[0])
            await self._guard(run, principal, head)
            self._trace(run, context.span)
        except BaseException:
            await self.release(run)
            raise
        return run

    async def _guard(self, run: Run, principal: Principal, head: int) -> None:
        """The run's guardrails, and its input through them: masked for the model, or
        refused (``run.refusal``: no model is called). A check that fails before anything
        is answered is a 503, unless it allows on error."""
        if self.guardrails is None:
            return
        own = run.agent.spec.guardrails if run.agent is not None else []
        guard = self.guardrails.guard(own, principal.guardrails, principal.owner, run.configured)
        if guard is None:
            return
        run.guard = guard
        if run.loop is not None:
            run.loop.guard = guard
        if not guard.guards("input"):
            return
        messages = run.call.body["messages"]
        beside = {k: v for k, v in run.call.body.items() if k != "messages"}
        try:
            screened = await guard.screen_input(messages[head:], beside)
        except Blocked as exc:
            run.refusal = Refusal(exc.message, exc.finding)
            return
        except Unavailable as exc:
            raise ServiceUnavailable(
                f"A guardrail ({exc.finding.check}) could not check this request ({exc}); "
                "nothing was sent to the model.",
                code="guardrail_unavailable",
            ) from None
        run.call.body = {**beside, "messages": [*messages[:head], *screened]}

    async def _search_files(
        self, run: Run, request: FileSearchTool, param: str, principal: Principal
    ) -> None:
        """The Responses request's ``file_search`` tool, over the caller's own stores, added
        to what its run offers: a model route's run then goes through the tool loop."""
        if self.knowledge is None:
            raise UnsupportedValue("This server does not search files.", param=param)
        caller = Caller(principal.owner, admin=principal.has("admin"))
        stores = await self.knowledge.usable_stores(caller, request.vector_store_ids, param)
        ranking = request.ranking_options
        hybrid = ranking.hybrid_search if ranking is not None else None
        tool = FileSearch(
            stores,
            self.knowledge.search_stores,
            SearchOptions(
                max_num_results=request.max_num_results,
                filters=filter_wire(request.filters),
                score_threshold=float(ranking.score_threshold) if ranking else 0.0,
                weights=Weights(float(hybrid.embedding_weight), float(hybrid.text_weight))
                if hybrid is not None
                else Weights(),
            ),
        )
        self._offer(run, tool, principal)

    async def _agent_knowledge(self, run: Run, spec: KnowledgeSpec, principal: Principal) -> None:
        """An agent's ``knowledge:``, searched with file_search: its own store (if it names
        files, once made) and the stores it names, whoever's they are."""
        if self.knowledge is None:
            return
        ids = ([agent_store_id(run.configured)] if spec.files else []) + spec.vector_store_ids
        stores = [await self.knowledge.store.store(i, Owner(None, anyone=True)) for i in ids]
        found = tuple(store for store in stores if store is not None)
        if not found:
            return
        options = SearchOptions(max_num_results=spec.max_num_results)
        self._offer(run, FileSearch(found, self.knowledge.search_stores, options), principal)

    @staticmethod
    def _offer(run: Run, tool: FileSearch, principal: Principal) -> None:
        """The run offers ``tool`` too: through the tool loop, which a model route's run,
        or an agent's without tools, then goes through."""
        if run.loop is not None:
            others = tuple(t for t in run.loop.agent.tools if t.name != tool.name)
            run.loop.agent = replace(run.loop.agent, tools=(*others, tool))
            return
        agent = run.agent or Agent(spec=AgentSpec(id=run.client_model), targets=run.targets)
        rounds = agent.spec.max_iterations if run.agent is not None else ROUTE_TOOL_ROUNDS
        run.loop = LoopCall(
            replace(agent, tools=(*agent.tools, tool)), run.call, rounds, tools=principal.tools
        )

    async def take_slots(self, run: Run) -> None:
        """A run started with ``slots_later``: its slots, once free (it waits, queued)."""
        assert run.ticket is not None  # started: admitted but for its slots
        await self.admission.take_slots(run.ticket, self._agent_limit(run))

    async def count_tokens(
        self, body: Json, context: RunRecord, principal: Principal = OPEN
    ) -> int:
        """The prompt's tokens as the first route would see them (the agent's prompt
        included), by its own tokenizer where it has one."""
        run = self._run(body, context, {}, await self._agent(body, principal))
        count = self._counter(run)
        messages = run.call.body["messages"]
        tools = run.call.body.get("tools")

        def total() -> int:
            extra = len(orjson.dumps(tools)) // 3 if tools else 0
            return sum(count(message) for message in messages) + extra

        return await asyncio.to_thread(total)

    async def check_model(self, body: Any, principal: Principal) -> None:
        """That the request's ``model`` is an agent or route this caller may use, without
        running anything (a WebSocket's warm-up): ``ModelNotFound`` if not."""
        if await self._agent(body, principal) is None and (
            self.routes.for_client(body["model"]) is None
        ):
            raise ModelNotFound(body["model"])

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

    def _counter(self, run: Run) -> Callable[[Json], int]:
        """Message sizes by the first route's own tokenizer, or estimated without one."""
        counter = self.router.providers[run.targets[0].provider].token_counter()
        return counting_with(counter) if counter is not None else estimate_tokens

    @staticmethod
    def _trace(run: Run, parent: Span) -> None:
        """Model calls go under the request's span, or under the agent's run."""
        span = parent
        if run.agent is not None:
            session = run.session.session_id if run.session is not None else None
            span = run.agent_span = agent_span(parent, run.agent.id, session, run.agent_version)
        run.call.span = span  # the tool loop's calls too: it starts from this call

    def _agent_limit(self, run: Run) -> int | None:
        if run.agent is None:
            return None
        return run.agent.spec.max_concurrency or self.admission.limits.agent_concurrency

    async def _begin_session(
        self,
        run: Run,
        session_id: str | None,
        principal: Principal,
        keep: bool,
        new_session: str | None = None,
    ) -> None:
        if session_id is None and not keep and run.agent is None:
            return  # a plain model route stays stateless unless asked to keep or continue
        head = run.call.body["messages"][: run.prepended]  # the agent's own prompt
        sent = run.call.body["messages"][run.prepended :]
        turn = await self.sessions.begin(
            session_id, run.configured, sent, principal.owner, new_session
        )
        if turn.history:
            system = [*head, *(m for m in sent if m.get("role") in ("system", "developer"))]
            messages = await self._fit(run, system, turn)
            run.call.body = {**run.call.body, "messages": messages}
            run.prepended = 0  # indices now point into the stored history too
        run.session = turn

    async def _fit(self, run: Run, system: list[Json], turn: SessionTurn) -> list[Json]:
        """The turn's messages, trimmed to the smallest context window among its routes,
        counted with the first route's tokenizer where it has one."""
        providers = [self.router.providers[target.provider] for target in run.targets]
        windows = [p.context_window for p in providers if p.context_window]
        if not windows:
            return turn.messages(system)
        window = min(windows)
        asked = run.call.body.get("max_completion_tokens") or run.call.body.get("max_tokens")
        reserve = asked if isinstance(asked, int) else min(window // 4, 4096)
        return await asyncio.to_thread(
            trim, system, turn.history, turn.added, max(window - reserve, 0), self._counter(run)
        )

    def _run(
        self,
        body: Any,
        context: RunRecord,
        headers: Mapping[str, str],
        agent: Agent | None,
        tools: ToolPolicy = EVERY_TOOL,
        approve_writes: bool = False,
        answering: bool = False,
    ) -> Run:
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(
                "Missing required parameter: 'model'.",
                param="model",
                code="missing_required_parameter",
            )
        spend = Spend()  # every model call's cost, the tool loop's included
        run = Run(
            client_model=name,
            targets=(),
            call=ChatCall(body={}, timer=context.timer, request_id=context.request_id, spend=spend),
            stream=body.get("stream") is True,
            include_usage=include_usage(body),
            agent=agent,
        )
        if agent is not None:
            request = self._agent_request(body, answering)
            if request.unknown_fields():
                log.debug("ignoring unknown chat fields: %s", ", ".join(request.unknown_fields()))
            run.call.body, run.targets = agent_body(agent, request), agent.targets
            run.prepended = len(run.call.body["messages"]) - len(request.messages)
            if agent.acts:
                steps = max_iterations(agent.spec, request.max_iterations)
                approval = ApprovalPolicy(agent.spec.require_approval, approve_writes)
                run.loop = LoopCall(agent, run.call, steps, tools=tools, approval=approval)
                run.progress = progress_format(request, headers)
        else:
            found = self.routes.for_client(name)
            if found is None:
                raise ModelNotFound(name)
            passthrough_checks(body)
            run.call.body, run.targets = without_headend_fields(body), found
        # a configured name (an agent's id, not its version): bounded, so it may label metrics
        context.model = agent.id if agent is not None else name
        return run

    @staticmethod
    def _agent_request(body: Json, answering: bool) -> ChatCompletionRequest:
        """The request to an agent, checked. One that only answers approval requests may
        bring no message: the conversation goes on from the calls it answers."""
        if not answering or body.get("messages"):
            return validate(ChatCompletionRequest, body)
        seat = {"role": "user", "content": "."}  # checked with one, then none
        request = validate(ChatCompletionRequest, {**body, "messages": [seat]})
        request.messages = []
        return request

    async def events(self, run: Run) -> AsyncGenerator[RunEvent, None]:
        """The run's output, for every surface to frame: a streamed run's batches of
        ``chat.completion.chunk`` as they arrive (and its tools' progress), or one
        ``Completion``. Upstreams are always asked for a stream's usage; its chunks carry it
        only if ``run.include_usage``. The run is released when its events end."""
        try:
            if run.refusal is not None:
                yield self._refusal(run, run.refusal)
            elif not run.stream:
                yield Completion(await self._answer(run))
            elif run.loop is not None:
                async for event in self._loop_stream(run, run.loop):
                    yield event
            else:
                async for batch in self._relay(run):
                    yield batch
        except InvalidRequest as exc:
            raise in_client_terms(exc, run.prepended) from None
        finally:
            await self.release(run)

    @staticmethod
    def _refusal(run: Run, refusal: Refusal) -> RunEvent:
        """A blocked request's answer: no model was called and the session keeps nothing."""
        if not run.stream:
            answer = refusal_completion(run.client_model, refusal.message)
            if run.session is not None:
                answer["session_id"] = run.session.session_id
            return Completion(answer)
        chunks = refusal_chunks(run.client_model, refusal.message, opened=False)
        if run.session is not None:
            chunks[0]["session_id"] = run.session.session_id
        if run.include_usage:
            chunks.append({**chunks[-1], "choices": [], "usage": dict(NO_USAGE)})
        return chunks

    async def release(self, run: Run) -> None:
        """Let the session's next turn in and give the slots back: once, however it ended."""
        if run.released:
            return
        run.released = True
        if run.agent_span is not None:
            run.agent_span.end()
        if run.session is not None:
            await self.sessions.end(run.session)
        if run.ticket is not None:
            messages = run.call.body["messages"]
            await self.admission.leave(
                run.ticket, lambda: sum(estimate_tokens(m) for m in messages)
            )

    async def _answer(self, run: Run) -> Json:
        """The ``chat.completion`` of a run not streamed, its turn committed."""
        if run.loop is not None:
            end = await self.loop.finish(run.loop)
            run.sources = end.sources
            session_id = run.session.session_id if run.session is not None else None
            answer = loop_completion(end, run.client_model, run.approvals_as_text, session_id)
            run.count_usage(end.usage)
            if run.guard is not None:
                answer, blocked = await screened(run.guard, answer)
                if blocked:
                    return answer
                end = replace(end, messages=restored_messages(run.guard, end.messages))
            if run.session is not None:
                await self._commit_agent_turn(run, end)
                answer["session_id"] = run.session.session_id
            return answer
        answer, _target = await self.router.complete(run.targets, run.call)
        answer["model"] = run.client_model
        run.count_usage(answer.get("usage"))
        if run.guard is not None:
            answer, blocked = await screened(run.guard, answer)
            if blocked:
                return answer
        produced = [stored_message(answer["choices"][0]["message"])]
        if run.session is not None:
            await self.sessions.commit(run.session, produced, run.agent_version)
            answer["session_id"] = run.session.session_id
        return answer

    async def _loop_stream(
        self, run: Run, loop: LoopCall
    ) -> AsyncGenerator[list[Json] | ToolProgress, None]:
        shape = run.frames = Frames(run.client_model, run.include_usage, run.progress)
        shape.approvals_as_text = run.approvals_as_text
        if run.session is not None:
            shape.session_id = run.session.session_id
        events = loop_chunks(self.loop.stream(loop), shape)
        guarded = GuardedStream(run.guard, run.client_model) if run.guard is not None else None
        if guarded is not None:
            events = guarded.batches(events)
        try:
            async for event in events:
                if isinstance(event, list) and shape.end_state is not None:
                    run.sources = shape.end_state.sources  # before its last chunks go out
                yield event
        finally:
            await events.aclose()
        if guarded is not None and guarded.blocked is not None:
            return  # the loop was left where it was: nothing of it is kept
        run.count_usage(shape.usage)
        if run.session is not None and shape.end_state is not None:
            end = shape.end_state
            if run.guard is not None:
                end = replace(end, messages=restored_messages(run.guard, end.messages))
            await self._commit_agent_turn(run, end)

    async def _commit_agent_turn(self, run: Run, end: LoopEnd) -> None:
        """The turn, and then the calls it stopped at to ask approval for."""
        assert run.session is not None
        await self.sessions.commit(run.session, end.messages, run.agent_version, end.answered)
        if end.approvals:
            await self.approvals.open(run.session, run.owner, run.configured, end.approvals)

    async def _relay(self, run: Run) -> AsyncGenerator[list[Json], None]:
        reply = Reply()
        first = True
        batches = self.router.stream(run.targets, run.call)
        guarded = GuardedStream(run.guard, run.client_model) if run.guard is not None else None
        if guarded is not None:
            batches = guarded.batches(batches)
        try:
            async for batch in batches:
                frames = []
                for chunk in batch:
                    reply.absorb(chunk)
                    if chunk.get("usage"):
                        run.count_usage(chunk["usage"])
                    if not chunk.get("choices") and chunk.get("usage"):
                        if not run.include_usage:
                            continue
                    elif not run.include_usage:
                        chunk.pop("usage", None)
                    chunk["model"] = run.client_model
                    if first and run.session is not None:
                        chunk["session_id"] = run.session.session_id
                    first = False
                    frames.append(chunk)
                if frames:
                    yield frames
        finally:
            await batches.aclose()
        if run.session is not None and (guarded is None or guarded.blocked is None):
            await self.sessions.commit(run.session, [reply.message()], run.agent_version)
