"""The ``Store``: where sessions and their messages last. Only ``headend.store`` writes SQL.

A turn's messages are written in one transaction when the turn completes, so a failed or
abandoned turn leaves nothing behind and a crash never leaves half a turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from headend.store.sql import Db
from headend.types import Json


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    owner: str | None
    agent: str
    metadata: Json
    created_at: float
    updated_at: float
    turns: int


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An API key as stored: never the secret, only its SHA-256."""

    id: str
    name: str
    prefix: str  # the secret's first characters, to recognise it in lists
    scopes: tuple[str, ...]
    agents: tuple[str, ...] | None  # None: every agent and model
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None
    rpm: int | None = None  # requests per minute; None: no limit
    tpm: int | None = None  # tokens per minute
    max_concurrency: int | None = None  # requests running at once
    # The agent tools its runs may use: None every one, "none", "read-only", or these names.
    tools: str | tuple[str, ...] | None = None
    # A publishable key (``pk-he-``, for the chat widget): the sites it works from, each
    # visitor's requests per minute, and the secret that signs its visitor tokens and checks
    # its sites' user hashes. None on every other key.
    origins: tuple[str, ...] | None = None
    visitor_rpm: int | None = None
    signing_secret: str | None = field(default=None, repr=False)
    budget: float | None = None  # what it may spend in its budget period; None: no limit
    budget_period: str | None = None  # day, week or month
    require_approval: bool = False  # its runs' calls that do more than read ask a person first
    guardrails: str | None = None  # its guardrails list, as JSON (headend.guardrails.rules)

    @property
    def publishable(self) -> bool:
        return self.origins is not None

    def active(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Tokens used by one key (None: open mode) on one agent or model, on one UTC day."""

    day: str  # YYYY-MM-DD
    key_id: str | None
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float = 0.0  # at the prices configured when the tokens were used


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change to a key or an agent: who made it, what, to what, and when."""

    at: float
    actor: str  # a key id, "cli:<user>", "file" (the agents directory), "anonymous"
    action: str  # key.create, agent.publish… (headend.observability.audit_log.ACTIONS)
    target: str  # the key's or agent's id
    detail: Json = field(default_factory=dict)  # never a secret
    id: int | None = None  # numbered by the store, in the order written


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which entries to list, newest first: up to ``limit`` older than entry ``before``."""

    limit: int = 100
    before: int | None = None
    target: str | None = None
    action: str | None = None  # an action, or a family of them: "agent" is agent.*
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class ResponseRecord:
    """A stored Responses API answer: its object, its input, and the session turn it made."""

    id: str
    owner: str | None
    session_id: str | None
    turn: int | None  # the session turn (0-based) this response wrote
    created_at: float
    body: Json
    input_items: list[Json]


TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "incomplete"})


@dataclass(frozen=True, slots=True)
class BackgroundRun:
    """A response made with ``background: true``: where its run is and whether its owner
    asked to cancel it. Its object (``responses.body``) is kept up to date as it runs, and
    its stream's events are kept in order (``response_events``) for clients to follow."""

    id: str  # the response's
    owner: str | None
    status: str  # queued, in_progress, then one of TERMINAL_STATUSES
    cancel_requested: bool
    created_at: float
    updated_at: float
    attempt: int = 0  # how many times it was taken up after its instance stopped

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One event for one endpoint, in the outbox until delivered or given up on."""

    id: str  # whd_…
    event_id: str  # evt_…: the webhook-id header, the same on every attempt
    endpoint: str  # the URL, as configured
    event_type: str
    payload: Json
    status: str  # pending, delivered or failed
    attempts: int
    next_attempt_at: float
    created_at: float
    last_status: int | None = None  # the endpoint's HTTP status, last attempt
    last_error: str | None = None  # why the last attempt failed
    updated_at: float | None = None


@dataclass(frozen=True, slots=True)
class ScheduleFire:
    """One time a schedule entry fired: the background response it started, and where that
    is now (None: not started, e.g. refused)."""

    agent: str
    entry: str  # ScheduleEntry.key
    fire_at: float  # the time the cron named
    fired_at: float  # when an instance took it
    response_id: str | None
    status: str | None  # the response's, from its background run
    error: str | None  # why no run started


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What an attempt came to: the delivery's next state."""

    status: str  # pending (to be tried again), delivered or failed
    attempts: int
    next_attempt_at: float
    last_status: int | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class BackgroundProgress:
    """What a background run did since it last wrote: its next events (numbered from
    ``first``), its response object now and its status."""

    response_id: str
    first: int  # the sequence number of ``events[0]``
    events: list[Json]
    body: Json
    status: str
    outbox: tuple[WebhookDelivery, ...] = ()  # webhooks for the run's end, in its transaction
    attempt: int = 0  # the writer's claim: a write from an older claim raises LeaseLost
    steps: tuple[RunStep, ...] = ()  # journal steps committed with these events
    released: bool = False  # the claim given up (a shutdown): any instance may take it now


@dataclass(frozen=True, slots=True)
class RunStep:
    """One committed step of a background run, kept so that a run taken up after a crash
    goes on from it: a model reply that called the agent's tools (``reply``: the assistant
    message and the call's usage) or one tool's result (``tool``: its call id and text)."""

    number: int  # from 0, in the order committed
    kind: str  # reply or tool
    data: Json
    attempt: int  # the claim of the run that made it (0: the instance that accepted it)
    created_at: float


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    """A background run taken over from an instance that stopped renewing its claim: how
    to start it again (``resume``), and the claim's number, which every write must carry."""

    id: str
    owner: str | None
    attempt: int
    resume: Json | None  # None: a run recorded before runs could be taken up


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """A tool call waiting for a person's approval, kept with its session (and gone with
    it), and what came of it."""

    id: str  # mcpr_…: the approval request's id on the wire
    owner: str | None  # the session's
    session_id: str
    agent: str
    call_id: str  # the model's tool call
    name: str  # the tool as the model called it
    ref: str  # the tool as agent files name it
    server_label: str  # the MCP server, or headend for built-in and agent tools
    arguments: str  # exactly what runs if approved
    status: str  # pending, approved, denied or expired
    created_at: float
    expires_at: float
    decided_at: float | None = None
    decided_by: str | None = None  # the key that answered
    reason: str | None = None
    applied_at: float | None = None  # when a turn went on from it (the call ran, or not)


@dataclass(frozen=True, slots=True)
class ConsoleLogin:
    """A browser signed in to the console: the key it signed in with (by its secret's
    hash, so revoking or rotating the key ends the login) and until when."""

    key_id: str
    secret_hash: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class AgentVersion:
    """One version of an agent: its whole definition (front matter and prompt, as its file
    has them), numbered from 1 in the order recorded."""

    agent: str
    version: int
    content: str
    origin: str  # "file": read from the agents directory
    created_by: str | None  # who made it (a key's id); None for a file
    created_at: float


@dataclass(frozen=True, slots=True)
class StoredAgent:
    """An agent defined through the API rather than a file: the version it serves (None
    until first published) and its draft, the next version being written."""

    id: str
    published: int | None
    published_by: str | None
    published_at: float | None
    draft: str | None  # front matter and prompt, as an agent file has them
    draft_by: str | None
    draft_at: float | None
    created_by: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """A stored turn: its index in its session, and the agent version that answered it
    (None: a model route, or a turn stored before versions were)."""

    turn: int
    agent_version: int | None
    created_at: float | None


@dataclass(frozen=True, slots=True)
class NewSession:
    owner: str | None
    agent: str
    metadata: Json


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """A request made under an ``Idempotency-Key``: still running (``status`` None), or
    its answer as sent."""

    body_hash: str
    status: int | None
    headers: dict[str, str]
    body: bytes


class Store(Protocol):
    async def start(self) -> None:
        """Open, and bring the schema up to date."""

    async def close(self) -> None: ...

    def sql(self) -> Db:
        """Portable statements on this store (what knowledge's tables are written with)."""
        ...

    async def ping(self) -> None:
        """Raise unless the store answers (what readiness asks)."""

    async def create_session(
        self, session_id: str, owner: str | None, agent: str, metadata: Json
    ) -> SessionRecord: ...

    async def get_session(self, session_id: str, owner: str | None) -> SessionRecord | None:
        """The session, or None when it does not exist or belongs to another owner."""
        ...

    async def list_sessions(
        self, owner: str | None, limit: int, before: float | None = None
    ) -> list[SessionRecord]:
        """Newest first (by last update), those updated before ``before`` when given."""
        ...

    async def delete_session(self, session_id: str, owner: str | None) -> bool: ...

    async def messages(self, session_id: str, through_turn: int | None = None) -> list[Json]:
        """The session's messages in order; only those of turns up to ``through_turn``
        when given."""
        ...

    async def append_turn(
        self,
        session_id: str,
        messages: list[Json],
        new: NewSession | None = None,
        agent_version: int | None = None,
    ) -> int:
        """Add one turn's messages, all or nothing, with the agent version that answered;
        ``new`` creates the session in the same transaction (a session's first turn). The
        turn's index (0 for the first)."""
        ...

    async def turns(self, session_id: str) -> list[TurnRecord]:
        """The session's turns in order, with the agent version of each."""
        ...

    async def record_agent_version(
        self, agent: str, content: str, origin: str, by: str | None, at: float
    ) -> AgentVersion:
        """The agent's latest version if its content is ``content``, else a new one
        (numbered one past the latest). Atomic across processes sharing the store: two
        recording the same content at once get the same version."""
        ...

    async def agent_version(self, agent: str, version: int) -> AgentVersion | None: ...

    async def agent_versions(self, agent: str) -> list[AgentVersion]:
        """Newest first."""
        ...

    async def create_agent(self, agent: str, draft: str, by: str | None, at: float) -> bool:
        """A new stored agent with its first draft; False when one with this id exists. A
        deleted one's id may be used again: its versions carry on where they stopped."""
        ...

    async def stored_agents(self) -> list[StoredAgent]:
        """Every stored agent not deleted, by id."""
        ...

    async def stored_agent(self, agent: str) -> StoredAgent | None: ...

    async def save_draft(self, agent: str, draft: str | None, by: str | None, at: float) -> bool:
        """Replace the agent's draft (None: discard it); False when there is no such agent."""
        ...

    async def publish_agent(
        self, agent: str, version: int, by: str | None, at: float, draft: str | None
    ) -> bool:
        """Serve ``version`` from now on, discarding the draft if it is still ``draft`` (the
        text just published); False when there is no such agent."""
        ...

    async def delete_agent(self, agent: str, at: float) -> bool:
        """Stop serving the stored agent (its versions stay on record)."""
        ...

    async def claim(self, session_id: str, holder: str, until: float) -> bool:
        """Take the session's turn lease until ``until`` (epoch seconds) unless someone else
        holds an unexpired one: what keeps instances sharing a store from interleaving."""
        ...

    async def release(self, session_id: str, holder: str) -> None: ...

    async def create_key(self, record: KeyRecord, secret_hash: str) -> None: ...

    async def key_by_hash(self, secret_hash: str) -> KeyRecord | None: ...

    async def list_keys(self) -> list[KeyRecord]: ...

    async def has_keys(self) -> bool:
        """Whether any key was ever issued (revoked ones count: headend is not open then)."""
        ...

    async def revoke_key(self, key_id: str, at: float) -> bool: ...

    async def rotate_key(self, key_id: str, secret_hash: str, prefix: str) -> bool:
        """A new secret for the key; the old one stops working at once."""
        ...

    async def touch_keys(self, used: dict[str, float]) -> None:
        """Record when keys were last used (batched by the caller)."""
        ...

    async def add_usage(self, rows: list[UsageRow]) -> None:
        """Add to the day's totals (rows are increments; instances add to the same rows)."""
        ...

    async def usage(self, since_day: str, key_id: str | None = None) -> list[UsageRow]:
        """Totals from ``since_day`` on, by day, key and model."""
        ...

    async def spent(self, key_id: str, since_day: str) -> float:
        """What the key's requests cost from ``since_day`` on (as written so far)."""
        ...

    async def add_audit(self, entry: AuditEntry) -> None: ...

    async def audit(self, query: AuditQuery) -> list[AuditEntry]:
        """The entries ``query`` asks for, newest first."""
        ...

    async def save_response(self, record: ResponseRecord) -> None:
        """Store the response (or replace the one of that id) and index its items (input
        and output) by id."""
        ...

    async def create_background_run(
        self, record: ResponseRecord, at: float, resume: Json | None = None
    ) -> None:
        """Store a background response as queued, in one transaction with its object, and
        what an instance needs to start it again (``resume``)."""
        ...

    async def claim_stale_runs(
        self, stale_before: float, now: float, limit: int
    ) -> list[ClaimedRun]:
        """Take over up to ``limit`` unfinished runs not written to since ``stale_before``
        (their instance stopped): each gets the next claim number, and no two callers get
        the same run."""
        ...

    async def run_steps(self, response_id: str) -> list[RunStep]:
        """A background run's committed steps, in order."""
        ...

    async def add_approvals(self, records: list[ApprovalRecord]) -> None:
        """Keep tool calls waiting for approval (their session exists)."""
        ...

    async def open_approvals(self, session_id: str) -> list[ApprovalRecord]:
        """A session's calls no turn has gone on from yet (answered or not), oldest first."""
        ...

    async def session_approvals(self, session_id: str, limit: int) -> list[ApprovalRecord]:
        """A session's approval requests, the latest ``limit``, oldest first."""
        ...

    async def apply_approvals(self, approval_ids: list[str], at: float) -> None:
        """A turn went on from these (their calls ran, or the model was told why not)."""
        ...

    async def approval(
        self, approval_id: str, owner: str | None, any_owner: bool = False
    ) -> ApprovalRecord | None:
        """The owner's approval request of that id (another owner's is None, unless
        ``any_owner``: an admin's look)."""
        ...

    async def decide_approval(
        self, approval_id: str, status: str, by: str | None, reason: str | None, at: float
    ) -> bool:
        """Answer a pending approval; False when it was answered already."""
        ...

    async def list_background_runs(self, status: str | None, limit: int) -> list[BackgroundRun]:
        """Every owner's background runs (of that status), newest first: for operators."""
        ...

    async def any_background_run(self, response_id: str) -> BackgroundRun | None:
        """A background run, whoever owns it: for operators."""
        ...

    async def last_event(self, response_id: str) -> int:
        """The sequence number of a background response's last stored event (-1: none)."""
        ...

    async def unfinished_background_runs(self, owner: str | None) -> int:
        """How many of the owner's background runs are queued or running."""
        ...

    async def background_run(self, response_id: str, owner: str | None) -> BackgroundRun | None:
        """The background run of the owner's response, or None (none, or another owner's)."""
        ...

    async def record_background_progress(self, progress: BackgroundProgress) -> bool:
        """Append the events and steps and, unless the run has finished already, set its
        object and status; in one transaction, refused (``LeaseLost``) when the run has been
        claimed since by another. Whether its owner has asked to cancel it."""
        ...

    async def claim_fire(self, agent: str, entry: str, fire_at: float, at: float) -> bool:
        """Take one fire of a schedule entry; False when an instance has taken it already."""
        ...

    async def fire_started(
        self, agent: str, entry: str, fire_at: float, response_id: str | None, error: str | None
    ) -> None:
        """What a fire came to: its background response, or why there is none."""
        ...

    async def recent_fires(self, agent: str, limit: int) -> list[ScheduleFire]:
        """An agent's latest fires, newest first, each with its response's status."""
        ...

    async def claim_deliveries(
        self, now: float, holder: str, until: float, limit: int
    ) -> list[WebhookDelivery]:
        """Up to ``limit`` pending deliveries that are due and nobody holds, held by
        ``holder`` until ``until`` (another instance takes them after that)."""
        ...

    async def record_delivery(
        self, delivery_id: str, holder: str, outcome: DeliveryOutcome
    ) -> None:
        """An attempt's outcome, if ``holder`` still holds the delivery; it is let go."""
        ...

    async def deliveries(self, status: str | None, limit: int) -> list[WebhookDelivery]:
        """The newest deliveries, of one status or all."""
        ...

    async def response_events(self, response_id: str, after: int, limit: int) -> list[Json]:
        """Up to ``limit`` stored events of a background response with a sequence number
        above ``after``, in order."""
        ...

    async def request_cancel(self, response_id: str, owner: str | None) -> BackgroundRun | None:
        """Ask the owner's background run to stop (nothing changes once it has finished);
        the run as it is now, or None when there is none."""
        ...

    async def response_item(self, item_id: str, owner: str | None) -> Json | None:
        """An item of one of the owner's stored responses, or None (unknown, or another
        owner's)."""
        ...

    async def get_response(self, response_id: str, owner: str | None) -> ResponseRecord | None:
        """The response, or None when it does not exist or belongs to another owner."""
        ...

    async def delete_response(self, response_id: str, owner: str | None) -> bool: ...

    async def save_console_login(self, token_hash: str, login: ConsoleLogin) -> None: ...

    async def console_login(self, token_hash: str, now: float) -> ConsoleLogin | None:
        """The login behind a console cookie (by the cookie token's hash), unless expired."""
        ...

    async def end_console_login(self, token_hash: str) -> None: ...

    async def claim_idempotency(
        self, owner: str, key: str, body_hash: str, now: float, lease: float
    ) -> IdempotentRequest | None:
        """Claim ``key`` for a new run until ``now + lease`` and return None, or return the
        request already made with it, unless that one expired (a finished one is kept until
        its ``keep``, a running one's claim lapses with its lease). Atomic across processes."""
        ...

    async def finish_idempotency(
        self,
        owner: str,
        key: str,
        body_hash: str,
        answer: tuple[int, dict[str, str], bytes],
        keep_until: float,
    ) -> None:
        """Store the claimed run's answer (status, headers, body) until ``keep_until``."""

    async def release_idempotency(self, owner: str, key: str, body_hash: str) -> None:
        """Give a claim up (the run failed or was cut short): the key may be used again."""

    async def prune_idempotency(self, now: float) -> int:
        """Forget the expired ones; how many."""
        ...

    async def prune(self, updated_before: float) -> int:
        """Delete sessions last updated, and stored responses made, before the time; how
        many sessions went."""
        ...
