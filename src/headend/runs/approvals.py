"""Tool calls that wait for a person (``tools.approval_policy`` says which).

A turn whose model calls such a tool ends there: the other calls of that reply run, and each
waiting one is kept with the session (``open``), shown to the client as an approval request.
The session's next turn settles them (``settle``) before its model is asked anything: an
approved call runs with exactly the arguments it was asked with; a denied one, one left
unanswered, or one past ``expires`` seconds does not, and the model is told why. Only the
session's owner sees its requests (another key's are unknown); each is answered once. Every
answer goes into the audit log: who, which tool, the arguments' SHA-256.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from headend.access.principal import Principal
from headend.agents.approval_round import Answer
from headend.errors import InvalidRequest, NotFound
from headend.observability import audit_log
from headend.runs.session_turns import SessionTurn
from headend.store.base import ApprovalRecord, Store
from headend.types import Json

UNANSWERED = "The conversation went on without an answer to this call, so it did not run."
CUT_SHORT = "This call did not run: its turn ended before it could (the server stopped)."


class ApprovalNotFound(InvalidRequest):
    default_code = "approval_not_found"


class NoSuchApproval(NotFound):
    """The sessions API's: a session has no approval request of that id (or it is another
    key's session)."""

    default_code = "approval_not_found"


class ApprovalAnswered(InvalidRequest):
    default_code = "approval_already_answered"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A client's answer to one approval request, as its wire gave it."""

    approval_id: str
    approve: bool
    reason: str | None
    param: str  # where in the request it was, for an error


class Approvals:
    def __init__(
        self,
        store: Store,
        expires: float,
        counted: Counter | None = None,
        waited: Histogram | None = None,
    ) -> None:
        self.store = store
        self.expires = expires  # seconds an approval request waits for its answer
        self.counted = counted  # requests and their outcomes, as a metric
        self.waited = waited  # the time to a person's answer, as a metric

    async def open(
        self, turn: SessionTurn, owner: str | None, agent: str, pending: list[Json]
    ) -> None:
        """Keep the calls a turn stopped at (its session has been written)."""
        now = time.time()
        records = [
            ApprovalRecord(
                call["id"],
                owner,
                turn.session_id,
                agent,
                call["call_id"],
                call["tool"],
                call["ref"],
                call["server_label"],
                call["arguments"],
                "pending",
                now,
                now + self.expires,
            )
            for call in pending
        ]
        await self.store.add_approvals(records)
        self._count("requested", len(records))

    async def settle(
        self, turn: SessionTurn, verdicts: list[Verdict], principal: Principal
    ) -> list[Answer]:
        """The answers to the calls the session's last turn stopped at: given now
        (``verdicts``; refused if one names no waiting call of this session, or one answered
        already), given before through the sessions API, or none (unanswered, or expired);
        recorded, and the turn goes on from them."""
        waiting = await self.store.open_approvals(turn.session_id)
        opened = {record.id: record for record in waiting}
        given: dict[str, Verdict] = {}
        for verdict in verdicts:
            found = opened.get(verdict.approval_id)
            if found is None or found.status != "pending":
                await self._refuse(verdict, principal)
            given[verdict.approval_id] = verdict
        now = time.time()
        answers = []
        for record in waiting:
            if record.status == "pending":
                status, reason = await self._decide(record, given.get(record.id), principal, now)
            else:  # answered before, through the sessions API
                status, reason = record.status, told(record.status, record.reason, self.expires)
            approved = status == "approved"
            answers.append(Answer(record.call_id, record.name, record.arguments, approved, reason))
        if waiting:  # (most turns have none: no write for them)
            await self.store.apply_approvals([record.id for record in waiting], now)
        settled = {answer.call_id for answer in answers}
        return answers + cut_short([*turn.history, *turn.added], settled)

    async def answer(
        self, session_id: str, verdict: Verdict, principal: Principal
    ) -> ApprovalRecord:
        """A person's answer through the sessions API, kept until the session's next turn
        goes on from it. Only the session's owner, or an admin, may answer."""
        approval_id = verdict.approval_id
        record = await self.store.approval(approval_id, principal.owner, principal.has("admin"))
        if record is None or record.session_id != session_id:
            raise NoSuchApproval(f"No approval request '{approval_id}' in session '{session_id}'.")
        if record.status != "pending":
            raise ApprovalAnswered(
                f"The approval request '{approval_id}' has been answered already ({record.status})."
            )
        await self._decide(record, verdict, principal, time.time())
        found = await self.store.approval(approval_id, record.owner)
        assert found is not None  # just answered
        return found

    async def _decide(
        self, record: ApprovalRecord, verdict: Verdict | None, principal: Principal, now: float
    ) -> tuple[str, str]:
        """Record what comes of a waiting call: its status, and what the model is told."""
        if record.expires_at <= now:
            outcome = "expired"
        elif verdict is None:
            outcome = "unanswered"
        else:
            outcome = "approved" if verdict.approve else "denied"
        said = verdict.reason if verdict is not None else None
        status = "denied" if outcome == "unanswered" else outcome
        if not await self.store.decide_approval(record.id, status, principal.owner, said, now):
            raise ApprovalAnswered(
                f"The approval request '{record.id}' has been answered already.",
                param=verdict.param if verdict is not None else None,
            )
        await self._audit(record, status, principal)
        if verdict is not None and self.waited is not None and status != "expired":
            self.waited.labels(status).observe(now - record.created_at)
        return status, told(outcome, said, self.expires)

    async def _refuse(self, verdict: Verdict, principal: Principal) -> None:
        found = await self.store.approval(verdict.approval_id, principal.owner)
        if found is not None:
            raise ApprovalAnswered(
                f"The approval request '{verdict.approval_id}' has been answered already "
                f"({found.status}).",
                param=verdict.param,
            )
        raise ApprovalNotFound(
            f"No approval request '{verdict.approval_id}' waits in this conversation.",
            param=verdict.param,
        )

    async def _audit(self, record: ApprovalRecord, status: str, principal: Principal) -> None:
        action = {"approved": "approval.approve", "expired": "approval.expire"}.get(
            status, "approval.deny"
        )
        digest = hashlib.sha256(record.arguments.encode()).hexdigest()
        await audit_log.record(
            self.store,
            principal.owner,
            action,
            record.id,
            tool=record.ref,
            agent=record.agent,
            session_id=record.session_id,
            arguments_sha256=digest,
        )
        self._count(status, 1)

    def _count(self, outcome: str, n: int) -> None:
        if self.counted is not None and n:
            self.counted.labels(outcome).inc(n)


def told(outcome: str, reason: str | None, expires: float) -> str:
    """What the model is told of a call that waited for approval (approved: nothing)."""
    if outcome == "approved":
        return ""
    if outcome == "expired":
        return (
            f"The request to approve this call expired unanswered after {expires:g} s, "
            "so it did not run."
        )
    if outcome == "unanswered":
        return UNANSWERED
    why = f": {reason}" if reason else "."
    return f"A person denied this call, so it did not run{why}"


def cut_short(history: list[Json], answered: set[str]) -> list[Answer]:
    """Calls of the conversation's last model reply that have no result (neither stored nor
    sent now, as a client sends its own tools' results) and no approval to settle (a turn
    stopped between keeping the reply and its requests): the model is told they did not
    run, so that the conversation stays one the model accepts."""
    last = next((i for i in range(len(history) - 1, -1, -1) if history[i].get("tool_calls")), None)
    if last is None:
        return []
    done = {m.get("tool_call_id") for m in history[last + 1 :] if m.get("role") == "tool"}
    return [
        Answer(
            call["id"], call["function"]["name"], call["function"]["arguments"], False, CUT_SHORT
        )
        for call in history[last]["tool_calls"]
        if call["id"] not in done and call["id"] not in answered
    ]
