"""An agent called as one function — a message in, its answer out: how a protocol that knows
no chat reaches an agent (MCP's ``tools/call``; A2A's tasks are background responses).

It is the same run as a chat request's: the key's agents, tools, limits and budget hold,
the conversation is a session (continued when the caller names one, else new), and the
agent's tools report their progress as they go. What waits for a person's approval is said
in the answer's words (as on Chat Completions) and given as data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from headend.access.principal import Principal
from headend.agents.loop import ToolProgress
from headend.runs.record import RunRecord
from headend.runs.service import RunService
from headend.types import Json

OnProgress = Callable[[ToolProgress], Awaitable[None]]
PROGRESS = {"x-tool-progress": "true"}  # the run reports its tools' progress as events


@dataclass(slots=True)
class AgentAnswer:
    """What an agent said, and where its conversation goes on."""

    text: str = ""
    session_id: str | None = None
    finish_reason: str | None = None
    usage: Json = field(default_factory=dict)
    approvals: list[Json] = field(default_factory=list)  # calls waiting for a person

    def take(self, chunk: Json) -> None:
        """One ``chat.completion.chunk`` of the run's stream."""
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.text += delta["content"]
            if delta.get("refusal"):  # a guardrail's: said as the answer
                self.text += delta["refusal"]
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        if chunk.get("approval_requests"):
            self.approvals = chunk["approval_requests"]


class AgentCalls:
    def __init__(self, runs: RunService) -> None:
        self.runs = runs

    async def call(
        self,
        agent: str,
        content: str | list[Json],
        principal: Principal,
        record: RunRecord,
        session_id: str | None = None,
        on_progress: OnProgress | None = None,
    ) -> AgentAnswer:
        """Run ``agent`` on one user message (``content``: text, or chat content parts) and
        wait for its answer. Refusals (an agent the key may not use, its limits, a session
        not the caller's) raise as for a chat request."""
        body: Json = {
            "model": agent,
            "messages": [{"role": "user", "content": content}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if session_id is not None:
            body["session_id"] = session_id
        run = await self.runs.start(body, record, PROGRESS, principal)
        answer = AgentAnswer(session_id=run.session.session_id if run.session else None)
        async for event in self.runs.events(run):
            if isinstance(event, ToolProgress):
                if on_progress is not None:
                    await on_progress(event)
            elif isinstance(event, list):
                for chunk in event:
                    answer.take(chunk)
        return answer
