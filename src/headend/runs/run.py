"""One request's run: what it calls, what it holds while it runs, and what it answers as.

A ``Run`` is made by ``RunService.start`` and handed back to it for its events and its
release; the parts it holds belong to one layer each (the model call to the router, the
tool loop's call to the loop, the session's turn, the limits' ticket).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from headend.agents.loop import LoopCall, add_usage
from headend.agents.registry import Agent
from headend.guardrails.guard import Guard
from headend.observability.tracing import Span
from headend.pricing import Spend
from headend.providers.base import ChatCall
from headend.providers.model_routes import Target
from headend.runs.admission import Ticket
from headend.runs.guarding import Refusal
from headend.runs.session_turns import SessionTurn
from headend.schemas.openai.chat_api import ProgressFormat
from headend.surfaces.agent_chunks import Frames
from headend.tools.base import Source


@dataclass(slots=True)
class Run:
    """A validated request on its way: admitted, its session turn open, until released."""

    client_model: str  # as the request named it: ``support@3`` answers as ``support@3``
    targets: tuple[Target, ...]
    call: ChatCall  # the model call (for an agent with tools, the loop's first)
    stream: bool
    include_usage: bool
    prepended: int = 0  # messages an agent put before the client's
    loop: LoopCall | None = None  # an agent with tools runs the tool loop
    progress: ProgressFormat | None = None
    session: SessionTurn | None = None
    agent: Agent | None = None  # None: a plain model route
    ticket: Ticket | None = None  # admitted by the limits; given back by ``release``
    frames: Frames | None = None  # an agent stream's chunk shapes
    released: bool = False
    ignored: tuple[str, ...] = ()  # a widget visitor's fields the agent overrides
    agent_span: Span | None = None  # an agent's run, traced from admission to release
    owner: str | None = None  # whose sessions and approvals these are
    approvals_as_text: bool = True  # calls waiting for approval said in words too
    # the passages hosted searches gave the model, once the run ended: what it may cite
    sources: list[Source] = field(default_factory=list)
    guard: Guard | None = None  # its guardrails (None: none apply)
    refusal: Refusal | None = None  # a guardrail blocked it: this is its answer

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
        assert self.call.spend is not None  # every run's call counts it
        return self.call.spend

    def count_usage(self, usage: object) -> None:
        """The request's usage as last reported (a stream reports it in its last chunk)."""
        if self.ticket is not None and isinstance(usage, dict):
            self.ticket.usage = {}
            add_usage(self.ticket.usage, usage)
