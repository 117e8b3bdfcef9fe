"""Conversations that last: a turn on a session is its stored history plus the request's new
messages; it is written, all at once, only when it has completed.

A session belongs to the agent (or model route) that started it: every turn is answered by
it, and continuing it with another ``model`` is refused rather than letting one agent answer
over another's history.

Two turns on one session never interleave: the second waits for the first (at most
``busy_wait`` seconds), then runs on the updated history, or gets 409 ``session_busy``.
Within a process a FIFO lock orders them; across processes sharing a store, a lease in the
store does, renewed while the turn runs (so after a crash mid-turn the session is free again
within ``LEASE`` seconds).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from headend.errors import SessionBusy, SessionModelMismatch, SessionNotFound
from headend.store.base import NewSession, Store
from headend.types import Json

LEASE = 10.0  # seconds a turn's lease lasts unless renewed
RENEW = LEASE / 3
POLL = 0.05


def new_session_id() -> str:
    return f"sess_{secrets.token_urlsafe(24)}"  # 192 random bits


def new_messages(history: list[Json], sent: list[Json]) -> list[Json]:
    """What the request adds to the stored history.

    A client that resends the whole conversation sends the history as a prefix: only the rest
    is new. Otherwise everything after the last assistant message is.
    """
    comparable = [m for m in sent if m.get("role") not in ("system", "developer")]
    if history and comparable[: len(history)] == history:
        return comparable[len(history) :]
    last_assistant = max(
        (i for i, m in enumerate(comparable) if m.get("role") == "assistant"), default=-1
    )
    return comparable[last_assistant + 1 :] if history else comparable


@dataclass(slots=True)
class _Gate:
    """A session's lock and how many turns hold or wait for it (to forget idle ones)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


@dataclass(slots=True)
class SessionTurn:
    session_id: str
    history: list[Json]
    added: list[Json]
    new: NewSession | None  # set when this turn creates the session
    gate: _Gate | None = None
    holder: str | None = None  # the store lease this turn holds
    renewer: asyncio.Task[None] | None = None
    written: int | None = None  # the turn's index once committed

    def messages(self, system: list[Json]) -> list[Json]:
        return [*system, *self.history, *self.added]


class SessionService:
    def __init__(self, store: Store, busy_wait: float) -> None:
        self.store = store
        self.busy_wait = busy_wait
        self._gates: dict[str, _Gate] = {}

    async def begin(
        self,
        session_id: str | None,
        agent: str,
        sent: list[Json],
        owner: str | None,
        new_id: str | None = None,
    ) -> SessionTurn:
        """The turn on ``session_id``, or on a new session (called ``new_id``: a run taken
        up after a crash keeps the id its response shows)."""
        if session_id is None:
            return SessionTurn(
                new_id or new_session_id(),
                [],
                sent_without_system(sent),
                NewSession(owner, agent, {}),
            )
        record = await self.store.get_session(session_id, owner)
        if record is None:
            raise SessionNotFound(session_id)
        if record.agent != agent:
            raise SessionModelMismatch(session_id, record.agent)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.busy_wait
        busy = SessionBusy(
            f"Session '{session_id}' is busy with another turn; try again.", param="session_id"
        )
        gate = self._gates.setdefault(session_id, _Gate())
        gate.users += 1
        try:
            await asyncio.wait_for(gate.lock.acquire(), self.busy_wait)
        except BaseException as exc:
            self._leave(session_id, gate)
            if isinstance(exc, TimeoutError):
                raise busy from None
            raise
        turn = SessionTurn(session_id, [], [], None, gate)
        try:
            holder = secrets.token_hex(8)
            while not await self.store.claim(session_id, holder, time.time() + LEASE):
                if loop.time() >= deadline:
                    raise busy
                await asyncio.sleep(POLL)
            turn.holder = holder
            turn.renewer = asyncio.create_task(self._renew(session_id, holder))
            turn.history = await self.store.messages(session_id)
        except BaseException:
            await self.end(turn)
            raise
        turn.added = new_messages(turn.history, sent)
        return turn

    async def commit(
        self,
        turn: SessionTurn,
        produced: list[Json],
        agent_version: int | None = None,
        before: list[Json] | None = None,
    ) -> None:
        """``before``: results of calls the last turn asked approval for, which belong
        before this turn's new messages."""
        messages = [*(before or ()), *turn.added, *produced]
        turn.written = await self.store.append_turn(
            turn.session_id, messages, turn.new, agent_version
        )

    async def end(self, turn: SessionTurn) -> None:
        """Always called, committed or not: lets the next turn in."""
        gate, turn.gate = turn.gate, None
        if gate is not None:
            gate.lock.release()
            self._leave(turn.session_id, gate)
        if turn.renewer is not None:
            turn.renewer.cancel()
            turn.renewer = None
        holder, turn.holder = turn.holder, None
        if holder is not None:
            await self.store.release(turn.session_id, holder)

    async def _renew(self, session_id: str, holder: str) -> None:
        while True:
            await asyncio.sleep(RENEW)
            await self.store.claim(session_id, holder, time.time() + LEASE)

    def _leave(self, session_id: str, gate: _Gate) -> None:
        gate.users -= 1
        if gate.users == 0:
            self._gates.pop(session_id, None)


def sent_without_system(sent: list[Json]) -> list[Json]:
    """System prompts belong to the agent or the request, not to the stored conversation."""
    return [m for m in sent if m.get("role") not in ("system", "developer")]


def estimate_tokens(message: Json) -> int:
    """A cautious token count: a token per three bytes of JSON, plus the framing."""
    return len(orjson.dumps(message)) // 3 + 4


def counting_with(counter: Callable[[str], int]) -> Callable[[Json], int]:
    """Message sizes from a model's own tokenizer: its text, tool calls, and the framing."""

    def count(message: Json) -> int:
        content = message.get("content")
        text = content if isinstance(content, str) else orjson.dumps(content).decode()
        if message.get("tool_calls"):
            text += orjson.dumps(message["tool_calls"]).decode()
        return counter(text) + 4

    return count


def trim(
    head: list[Json],
    history: list[Json],
    added: list[Json],
    budget: int,
    count: Callable[[Json], int] = estimate_tokens,
) -> list[Json]:
    """``head + history + added`` within ``budget`` tokens: the oldest turns of the history
    go first, whole (a user message and what answered it); the head (system prompts) and
    the new messages always stay."""
    fixed = sum(map(count, head)) + sum(map(count, added))
    sizes = [count(m) for m in history]
    start = 0
    while start < len(history) and fixed + sum(sizes[start:]) > budget:
        start += 1
        while start < len(history) and history[start].get("role") != "user":
            start += 1  # never keep a tool result or an answer without what it answered
    return [*head, *history[start:], *added]
