"""The tool loop: model → tool calls (run in parallel) → results → model, until an answer.

The model is offered the agent's tools and the client's own. Calls to the agent's tools are
run here and fed back; a call to a client tool ends the run and goes back to the client, as
the OpenAI API does. After ``max_iterations`` rounds of tool calls the model is asked once
more, with ``tool_choice: none``, and the run ends with ``finish_reason: length``.

The loop yields what the client should see as it happens: batches of content chunks, tool
progress, and one ``LoopEnd`` with the finish reason, the client's tool calls and the usage
summed over every model call.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from headend.agents.approval_round import Answer, call_arguments, placed, waiting
from headend.agents.journal import INTERRUPTED, Journal, RecordedRound
from headend.agents.registry import Agent
from headend.guardrails.checks import Blocked
from headend.guardrails.guard import Guard
from headend.observability.genai import agent_span, tool_result, tool_span
from headend.observability.metrics import ToolOutcome
from headend.observability.tracing import Span
from headend.pricing import cache_tokens, reasoning_tokens
from headend.providers.base import ChatCall
from headend.providers.reply import Reply
from headend.providers.router import Router
from headend.tools.approval_policy import NO_APPROVAL, ApprovalPolicy
from headend.tools.base import (
    HostedResult,
    HostedTool,
    Source,
    Tool,
    ToolContext,
    ToolError,
    function_spec,
)
from headend.tools.mcp import McpHub
from headend.tools.policy import EVERY_TOOL, ToolPolicy
from headend.types import Batch, Json

log = logging.getLogger(__name__)

USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


@dataclass(frozen=True, slots=True)
class ToolProgress:
    type: Literal["tool.started", "tool.completed"]
    tool_name: str
    label: str
    iteration: int
    success: bool | None = None
    duration_ms: int | None = None
    item: Json | None = None  # a hosted tool's output item (file_search_call), as it stands
    sources: tuple[Source, ...] = ()  # on completion: the passages it gave the model

    def payload(self) -> Json:
        data: Json = {
            "type": self.type,
            "tool_name": self.tool_name,
            "label": self.label,
            "iteration": self.iteration,
        }
        if self.type == "tool.completed":
            data |= {"success": self.success, "duration_ms": self.duration_ms}
        return data


@dataclass(frozen=True, slots=True)
class LoopEnd:
    finish_reason: str
    usage: Json
    client_calls: list[Json] = field(default_factory=list)
    text: str = ""
    messages: list[Json] = field(default_factory=list)  # what the run added to the conversation
    # calls waiting for a person's approval: the run stopped at them (see ``pending``)
    approvals: list[Json] = field(default_factory=list)
    # the results of calls a person answered, which belong before this turn's new messages
    answered: list[Json] = field(default_factory=list)
    # the passages hosted searches gave the model, which its answer may cite as [n]
    sources: list[Source] = field(default_factory=list)


LoopEvent = Batch | ToolProgress | LoopEnd


@dataclass(slots=True)
class LoopCall:
    """What the tool loop is given: an agent, the model call it starts from, and what the
    caller may use. Each round's model call is ``call`` with that round's messages; ``call``'s
    span is the agent's ``invoke_agent`` span (model and tool calls go under it) and its spend
    counts every model call (agents it calls add theirs)."""

    agent: Agent
    call: ChatCall  # the agent's upstream request: messages, sampling, forwarded fields
    max_iterations: int
    depth: int = 0
    tools: ToolPolicy = EVERY_TOOL  # what the calling key may use, down to agents it calls
    journal: Journal | None = None  # a background run's: its steps committed, or replayed
    approval: ApprovalPolicy = NO_APPROVAL  # which calls ask a person first
    answers: list[Answer] = field(default_factory=list)  # to calls the last turn asked about
    # its guardrails: calls' arguments and results screened, calls counted (None: none)
    guard: Guard | None = None


@dataclass(frozen=True, slots=True)
class Round:
    """Where a round's tool calls run: its number, its trace parent, and what a journal
    recorded of it before the run was taken up."""

    iteration: int
    parent: Span
    recorded: RecordedRound | None = None
    journal: Journal | None = None
    guard: Guard | None = None
    refused: dict[str, str] = field(default_factory=dict)  # calls past their limit: why

    def settled(self, call: Json, own: dict[str, Tool]) -> str | None:
        """A call's result without running it: recorded, or (cut short by the crash, its
        tool not safe to repeat) that it was interrupted; None: run it."""
        if self.recorded is None:
            return None
        if call["id"] in self.recorded.results:
            return self.recorded.results[call["id"]]
        tool = own.get(call["function"]["name"])
        arguments = call_arguments(call)
        if tool is not None and isinstance(arguments, dict) and not tool.repeatable(arguments):
            return INTERRUPTED
        return None  # repeatable, or refused whatever happens (unknown tool, bad arguments)


def add_usage(total: Json, usage: Any) -> None:
    """A call's usage added to the loop's, the cached, cache-written and reasoning tokens
    too (they are priced apart, and clients such as Claude Code show them)."""
    if not isinstance(usage, dict):
        return
    for key in USAGE_KEYS:
        total[key] = total.get(key, 0) + int(usage.get(key) or 0)
    cached, written = cache_tokens(usage)
    if cached or written:
        details = total.setdefault("prompt_tokens_details", {})
        details["cached_tokens"] = details.get("cached_tokens", 0) + cached
        details["cache_write_tokens"] = details.get("cache_write_tokens", 0) + written
    reasoning = reasoning_tokens(usage)
    if reasoning:
        details = total.setdefault("completion_tokens_details", {})
        details["reasoning_tokens"] = details.get("reasoning_tokens", 0) + reasoning


@dataclass(slots=True)
class Offer:
    """What one run offers its model, and how a reply ends the loop."""

    own: dict[str, Tool]  # the agent's tools the key allows, by name
    specs: list[Json]  # every tool offered, as the model sees them
    client_names: set[Any]  # the client's own tools: calls to them end the loop
    first_choice: Any  # the first call's tool_choice

    def request(self, run: LoopCall, messages: list[Json], iteration: int, last: bool) -> Json:
        """The model call of this round: the last one may not call a tool."""
        request = {**run.call.body, "messages": messages}
        if self.specs:
            request["tools"] = self.specs
            request["tool_choice"] = (
                "none" if last else (self.first_choice if iteration == 1 else "auto")
            )
            if run.agent.spec.parallel_tool_calls is not None:
                request.setdefault("parallel_tool_calls", run.agent.spec.parallel_tool_calls)
        return request

    def end(
        self, reply: Reply, calls: list[Json], last: bool, usage: Json, produced: list[Json]
    ) -> LoopEnd | None:
        """How the round ends the loop: an answer, the client's tool calls, or not at all."""
        text = "".join(reply.text)
        if last or not calls:
            reason = "length" if last else (reply.finish or "stop")
            answer: Json = {"role": "assistant", "content": text}
            return LoopEnd(reason, usage, text=text, messages=[*produced, answer])
        for_client = [c for c in calls if c["function"]["name"] in self.client_names]
        if not for_client:
            return None
        answer = {"role": "assistant", "tool_calls": for_client}
        if text:
            answer["content"] = text
        return LoopEnd("tool_calls", usage, for_client, text=text, messages=[*produced, answer])


class ToolLoop:
    def __init__(self, router: Router, agents: Callable[[str], Agent | None], mcp: McpHub) -> None:
        self.router = router
        self.agents = agents
        self.mcp = mcp
        self.scratch_root = Path(tempfile.gettempdir()) / "headend-scratch"

    async def stream(self, run: LoopCall) -> AsyncGenerator[LoopEvent, None]:
        """Model calls and tool runs in turn, until the model answers without calling a tool
        of the agent's (or calls one of the client's, or the rounds run out)."""
        offer = await self._offer(run)
        messages = list(run.call.body["messages"])
        added = len(messages)
        usage: Json = {key: 0 for key in USAGE_KEYS}
        scratch = self.scratch_root / run.call.request_id
        context = self._tool_context(run, scratch)
        role_sent = False
        journal = run.journal
        answered: list[Json] = []
        try:
            if run.answers:
                async for event in self._answer(
                    run.answers, offer.own, context, Round(0, run.call.span, guard=run.guard)
                ):
                    if isinstance(event, ToolProgress):
                        yield event
                    else:
                        answered.append(event)
                messages = placed(messages, answered)
                added = len(messages)
            for iteration in range(1, run.max_iterations + 2):
                last = iteration > run.max_iterations
                recorded = None
                if journal is not None and iteration <= len(journal.rounds):
                    recorded = journal.rounds[iteration - 1]  # asked before: not again
                    add_usage(usage, recorded.usage)
                    message = recorded.message
                else:
                    reply, spent = Reply(), {key: 0 for key in USAGE_KEYS}
                    call = replace(run.call, body=offer.request(run, messages, iteration, last))
                    async for batch in self.router.stream(run.agent.targets, call):
                        forward = self._absorb(batch, reply, spent, role_sent)
                        if forward:
                            role_sent = True
                            yield forward
                    add_usage(usage, spent)
                    calls = reply.tool_calls()
                    end = offer.end(reply, calls, last, usage, messages[added:])
                    if end is not None:
                        yield replace(end, answered=answered, sources=list(context.sources))
                        return
                    text = "".join(reply.text)
                    message = {"role": "assistant", "content": text or None, "tool_calls": calls}
                    if journal is not None:
                        await journal.replied(message, spent)
                messages.append(message)
                asking = waiting(message["tool_calls"], offer.own, run.approval)
                running = [call for call in message["tool_calls"] if call["id"] not in asking]
                refused = run.guard.over_limit(messages[:-1], running) if run.guard else {}
                async for event in self._run_tools(
                    running,
                    offer.own,
                    context,
                    Round(iteration, run.call.span, recorded, journal, run.guard, refused),
                ):
                    if isinstance(event, ToolProgress):
                        yield event
                    else:
                        messages.append(event)
                if asking:  # the run stops here, to ask
                    text = message.get("content") or ""
                    yield LoopEnd(
                        "stop",
                        usage,
                        text=text,
                        messages=messages[added:],
                        approvals=list(asking.values()),
                        answered=answered,
                        sources=list(context.sources),
                    )
                    return
        finally:
            if scratch.exists():
                await asyncio.to_thread(shutil.rmtree, scratch, True)

    async def _offer(self, run: LoopCall) -> Offer:
        """The tools offered to the model: the agent's that the key allows, then the client's."""
        agent = run.agent
        tools = [*agent.tools, *(await self.mcp.tools(list(agent.mcp)))]
        # a hosted search reads only what the agent or the request gave it: any key may
        tools = [tool for tool in tools if run.tools.allows(tool) or isinstance(tool, HostedTool)]
        client_tools: list[Json] = list(run.call.body.get("tools") or [])
        return Offer(
            own={tool.name: tool for tool in tools},  # a call to anything else is refused
            specs=[function_spec(tool) for tool in tools] + client_tools,
            client_names={(t.get("function") or {}).get("name") for t in client_tools},
            # The agent's tool_choice applies to the first call unless the client set one.
            first_choice=run.call.body.get("tool_choice", agent.spec.tool_choice or "auto"),
        )

    def _tool_context(self, run: LoopCall, scratch: Path) -> ToolContext:
        return ToolContext(
            agent_id=run.agent.id,
            request_id=run.call.request_id,
            scratch=scratch,
            depth=run.depth,
            allow_hosts=frozenset(h.lower() for h in run.agent.spec.allow_hosts),
            read_only=run.tools.read_only,
            call_agent=self._call_agent(run),
        )

    @staticmethod
    def _absorb(batch: Batch, reply: Reply, usage: Json, role_sent: bool) -> Batch:
        """Take a model's chunks in: keep its tool calls, pass its words on."""
        forward: Batch = []
        for chunk in batch:
            add_usage(usage, chunk.get("usage"))
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                if delta.get("tool_calls"):
                    reply.add_calls(delta["tool_calls"])
                reply.finish = choice.get("finish_reason") or reply.finish
                content = delta.get("content")
                if content:
                    reply.text.append(content)
                if content or (delta.get("role") and not role_sent and not forward):
                    out: Json = {"content": content or ""}
                    if not role_sent and not forward:
                        out = {"role": "assistant", **out}
                    forward.append(
                        {
                            **chunk,
                            "usage": None,
                            "choices": [
                                {"index": 0, "delta": out, "logprobs": None, "finish_reason": None}
                            ],
                        }
                    )
        return forward

    async def _run_tools(
        self, calls: list[Json], own: dict[str, Tool], context: ToolContext, at: Round
    ) -> AsyncGenerator[ToolProgress | Json, None]:
        """Run every call at once (those a journal has settled, not); progress as it
        happens, then the results in call order."""
        progress: asyncio.Queue[ToolProgress] = asyncio.Queue()
        iteration = at.iteration

        async def run_one(call: Json) -> Json:
            name = call["function"]["name"]
            tool = own.get(name)
            arguments = call_arguments(call)
            label = tool.label(arguments) if tool and isinstance(arguments, dict) else name
            begun = (
                tool.begun(call["id"], arguments)
                if isinstance(tool, HostedTool) and isinstance(arguments, dict)
                else None
            )
            progress.put_nowait(ToolProgress("tool.started", name, label, iteration, item=begun))
            span = tool_span(at.parent, name, call["id"], call["function"]["arguments"] or "")
            started = time.perf_counter()
            ok = False
            outcome: ToolOutcome = "error"
            result: str | None = None  # None: the run was cut short while the tool ran
            done: HostedResult | None = None
            try:
                if call["id"] in at.refused:
                    outcome, result, done = "blocked", at.refused[call["id"]], None
                else:
                    outcome, result, done = await self._invoke(
                        tool, name, arguments, context, call["id"], at.guard
                    )
                ok = outcome == "ok"
            finally:
                tool_result(span, outcome if result is not None else "cancelled", result or "")
                seconds = time.perf_counter() - started
                self.router.metrics.tool_call(name if tool else "unknown", outcome, seconds)
                progress.put_nowait(
                    ToolProgress(
                        "tool.completed",
                        name,
                        label,
                        iteration,
                        success=ok,
                        duration_ms=round(seconds * 1000),
                        item=done.item if done else (begun and {**begun, "status": "failed"}),
                        sources=done.sources if done else (),
                    )
                )
            if at.journal is not None:
                await at.journal.tool_done(call["id"], result)
            return {"role": "tool", "tool_call_id": call["id"], "content": result}

        async def settled(call: Json, result: str) -> Json:
            if at.recorded is not None and call["id"] not in at.recorded.results:
                assert at.journal is not None  # interrupted: recorded so, to be told once
                await at.journal.tool_done(call["id"], result)
            return {"role": "tool", "tool_call_id": call["id"], "content": result}

        known = [at.settled(call, own) for call in calls]
        tasks = [
            asyncio.ensure_future(run_one(call) if result is None else settled(call, result))
            for call, result in zip(calls, known, strict=True)
        ]
        running = known.count(None)
        try:
            for _ in range(2 * running):
                yield await progress.get()
            for result in await asyncio.gather(*tasks):
                yield result
        finally:
            for task in tasks:
                task.cancel()

    async def _answer(
        self, answers: list[Answer], own: dict[str, Tool], context: ToolContext, at: Round
    ) -> AsyncGenerator[ToolProgress | Json, None]:
        """The calls a person answered: the approved ones run (with the arguments they were
        asked with), the others' results say why they did not; in the answers' order."""
        approved = [
            {
                "id": a.call_id,
                "type": "function",
                "function": {"name": a.name, "arguments": a.arguments},
            }
            for a in answers
            if a.approved
        ]
        ran: dict[str, Json] = {}
        async for event in self._run_tools(approved, own, context, at):
            if isinstance(event, ToolProgress):
                yield event
            else:
                ran[event["tool_call_id"]] = event
        for answer in answers:
            yield ran.get(answer.call_id) or {
                "role": "tool",
                "tool_call_id": answer.call_id,
                "content": answer.reason,
            }

    async def _invoke(
        self,
        tool: Tool | None,
        name: str,
        arguments: Any,
        context: ToolContext,
        call_id: str = "",
        guard: Guard | None = None,
    ) -> tuple[ToolOutcome, str, HostedResult | None]:
        """A tool's result (and a hosted tool's item), or the reason it has none, through
        the run's guardrails: the user's values put back in its arguments, the arguments and
        the result screened. Every failure is text for the model."""
        if guard is None or not isinstance(arguments, dict):
            return await self._call(tool, name, arguments, context, call_id)
        try:
            arguments = await guard.screen_arguments(guard.restore(arguments))
        except Blocked as exc:
            return "blocked", f"Error: this call did not run: {exc.message}", None
        outcome, result, hosted = await self._call(tool, name, arguments, context, call_id)
        try:
            result = await guard.screen_result(result)
        except Blocked as exc:
            text = f"Error: the result of {name} was withheld: {exc.message}"
            return "blocked", text, None
        if hosted is not None:
            hosted = replace(hosted, text=result)
        return outcome, result, hosted

    @staticmethod
    async def _call(
        tool: Tool | None, name: str, arguments: Any, context: ToolContext, call_id: str
    ) -> tuple[ToolOutcome, str, HostedResult | None]:
        if tool is None:
            return "unknown", f"Error: there is no tool named {name!r}.", None
        if not isinstance(arguments, dict):
            return "error", f"Error: the arguments for {name} must be a JSON object.", None
        hosted: HostedResult | None = None
        try:
            async with asyncio.timeout(tool.timeout):
                if isinstance(tool, HostedTool):
                    hosted = await tool.run_hosted(call_id, arguments, context)
                    result = hosted.text
                else:
                    result = await tool.run(arguments, context)
        except TimeoutError:
            return "timeout", f"Error: {name} did not finish within {tool.timeout:g} s.", None
        except ToolError as exc:
            return "error", f"Error: {exc}", None
        except Exception as exc:  # a tool's bug must not fail the run: the model is told
            log.exception("tool %s failed", name)
            return "error", f"Error: {name} failed: {type(exc).__name__}: {exc}", None
        return ("error" if result.startswith("Error: ") else "ok"), result, hosted

    def _call_agent(self, run: LoopCall) -> Callable[[str, str, int], Awaitable[str]]:
        async def call(agent_id: str, text: str, depth: int) -> str:
            agent = self.agents(agent_id)
            if agent is None:
                raise ToolError(f"no agent named {agent_id!r}")
            messages: list[Json] = [{"role": "user", "content": text}]
            if agent.spec.system_prompt:
                messages.insert(0, {"role": "system", "content": agent.spec.system_prompt})
            body = {**agent.spec.sampling().model_dump(exclude_none=True), "messages": messages}
            outer = run.call
            inner = LoopCall(
                agent=agent,
                call=ChatCall(
                    body=body,
                    timer=outer.timer,
                    request_id=f"{outer.request_id}.{agent_id}",
                    span=agent_span(outer.span, agent.id, None),
                    spend=outer.spend,
                ),
                max_iterations=agent.spec.max_iterations,
                depth=depth,
                tools=run.tools,
            )
            try:
                end = await self.finish(inner)
            finally:
                inner.call.span.end()
            return end.text or "(no answer)"

        return call

    async def finish(self, run: LoopCall) -> LoopEnd:
        """Run to the end, for callers that want only the outcome."""
        events = self.stream(run)
        try:
            async for event in events:
                if isinstance(event, LoopEnd):
                    return event
        finally:
            await events.aclose()
        raise ToolError("the agent run ended without an answer")
