"""API keys: who is calling, and what they may do.

Keys come from ``Authorization: Bearer`` or ``x-api-key`` (what Anthropic clients send).
A key is found by the SHA-256 of its secret (secrets are 256-bit random, never stored); the
bootstrap admin key from ``HEADEND_ADMIN_KEY`` is compared in constant time. Keys are never
logged. With no key in the store and no admin key, headend is open, which it allows only on
a loopback address (see ``check_exposure``).

Each request needs one scope, by method and path: ``chat`` (alias ``chat:write``) to chat and
to write sessions, ``models:read`` for /v1/models, ``sessions:read`` to read sessions,
``metrics`` for /metrics (Prometheus), ``agents:write`` to manage agents (/admin/agents, and
to run an agent's draft), ``admin`` for the rest of /admin and everything ``agents:write``
may do. A key limited to some agents
sees only those, anywhere. A request with no key but the console's sign-in cookie acts as
the key it signed in with (``headend.console``). A publishable key (``pk-he-``) calls
nothing itself: the chat widget trades it for a visitor token (``vt-he-``), which chats as
one visitor of one site (``headend.widget``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from headend.agents.versions import draft_of
from headend.console.cookies import check_origin, cookie_token
from headend.errors import APIError, ConfigError, InsufficientScope, InvalidKey
from headend.limits.base import NO_RATES, Rates
from headend.limits.budget import Budget
from headend.server.context import context_of, refuse
from headend.server.fresh import FreshCache
from headend.store.base import KeyRecord, Store
from headend.tools.policy import EVERY_TOOL, ToolPolicy
from headend.widget.tokens import VISITOR_PREFIX

log = logging.getLogger(__name__)

SCOPES = ("chat", "models:read", "sessions:read", "metrics", "agents:write", "admin")
AGENTS_WRITE = "agents:write"
# A scope, and the next one that includes it: who may change agents may list them.
WIDER = {"models:read": AGENTS_WRITE, AGENTS_WRITE: "admin"}
# Health, the console's page and assets (it shows the sign-in), and the sign-in itself.
# The widget's script and its visitor sign-in (which checks the publishable key itself).
PUBLIC_PATHS = frozenset(
    {
        "/health",
        "/health/ready",
        "/",
        "/console",
        "/console/api/session",
        "/widget.js",
        "/widget/api/visitor",
    }
)
# What a visitor token may call: chat, and read back its own conversation.
VISITOR_PATHS = frozenset({"/v1/chat/completions", "/widget/api/conversation"})
SCOPE_ALIASES = {"chat:write": "chat"}
SECRET_PREFIX = "sk-he-"
PUBLISHABLE_PREFIX = "pk-he-"
CACHE_SECONDS = 1.0  # a revoked key is refused everywhere within this
AHEAD = 0.25  # seconds before then a key in use is read again, in the background


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: a key's id, scopes, agent allowlist (None: every agent), limits and the
    agent tools its runs may use; for a widget visitor, who and from where."""

    key_id: str | None
    scopes: frozenset[str]
    agents: frozenset[str] | None = None
    rates: Rates = NO_RATES
    max_concurrency: int | None = None
    tools: ToolPolicy = EVERY_TOOL
    visitor: str | None = None  # a publishable key's visitor
    address: str | None = None  # the visitor's client address
    visitor_rates: Rates = NO_RATES  # per visitor, and per client address
    budget: Budget | None = None  # the key's (its visitors share it)

    def may_use(self, name: str) -> bool:
        return self.agents is None or name in self.agents

    def has(self, scope: str) -> bool:
        found: str | None = scope
        while found is not None:
            if found in self.scopes:
                return True
            found = WIDER.get(found)
        return False

    def granted(self) -> list[str]:
        """Every scope it has, those its scopes include too."""
        return [scope for scope in SCOPES if self.has(scope)]

    @property
    def owner(self) -> str | None:
        """Whose sessions and stored responses these are: the key's, or one visitor's."""
        if self.visitor is None:
            return self.key_id
        return f"{self.key_id}/{self.visitor}"


OPEN = Principal(key_id=None, scopes=frozenset(SCOPES))
ADMIN = Principal(key_id="admin", scopes=frozenset(SCOPES))  # the bootstrap key


def normalize_scopes(scopes: list[str]) -> tuple[str, ...]:
    out = []
    for scope in scopes:
        scope = SCOPE_ALIASES.get(scope, scope)
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r} (scopes: {', '.join(SCOPES)})")
        if scope not in out:
            out.append(scope)
    return tuple(out)


Known = tuple[KeyRecord | None, Principal | None]  # a secret hash's key, if any


def new_secret(prefix: str = SECRET_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[: len(SECRET_PREFIX) + 6]  # both prefixes have the same length


def check_draft_access(name: str, principal: Principal) -> None:
    """The one rule for ``<agent>@draft``, wherever a model is named (chat, ``/v1/models``):
    drafts are for the keys that write them."""
    if draft_of(name) is not None and not principal.has(AGENTS_WRITE):
        raise InsufficientScope(
            f"'{name}' is an agent's draft: running or reading it needs the "
            f"'{AGENTS_WRITE}' scope (admin includes it)."
        )


def required_scope(method: str, path: str) -> str | None:
    """The scope a request needs; None for what anyone may call (health, the console's
    page and its sign-in)."""
    if path in PUBLIC_PATHS or path.startswith("/console/static/"):
        return None
    if path == "/admin/agents" or path.startswith("/admin/agents/"):
        return AGENTS_WRITE
    if path.startswith("/admin"):
        return "admin"
    if path == "/metrics":
        return "metrics"
    if path.startswith("/v1/models") or path == "/console/api/agents":
        return "models:read"
    if path.startswith("/v1/sessions") and method in READS:
        return "sessions:read"
    return "chat"


READS = ("GET", "HEAD")  # HEAD is a GET without the body: the same scope


def presented_secret(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The request's one credential; two (of one kind, or one of each) are refused, so no
    rule about which one wins can be played against another part of the stack."""
    secret = None
    found = 0
    for name, value in headers:
        if name == b"authorization":
            found += 1
            if value[:7].lower() == b"bearer ":
                secret = value[7:].strip().decode("latin-1") or None
        elif name == b"x-api-key":
            found += 1
            secret = value.strip().decode("latin-1") or None
    if found > 1:
        raise InvalidKey(
            "Send one credential: either 'Authorization: Bearer <key>' or 'x-api-key', once."
        )
    return secret


class Authenticator:
    def __init__(self, store: Store, admin_key: str | None) -> None:
        self.store = store
        self.admin_key = admin_key or None
        self._admin_hash = secret_hash(self.admin_key) if self.admin_key else None
        self._keys: FreshCache[str, Known] = FreshCache(self._lookup, CACHE_SECONDS, AHEAD)
        self._openness: FreshCache[None, bool] = FreshCache(self._no_keys, CACHE_SECONDS, AHEAD)
        self._used: dict[str, float] = {}

    async def is_open(self) -> bool:
        """No keys at all: nothing to check (allowed on loopback only)."""
        return await self._openness.get(None)

    async def _no_keys(self, _: None) -> bool:
        return self.admin_key is None and not await self.store.has_keys()

    async def principal(self, secret: str | None) -> Principal:
        if await self.is_open():
            return OPEN
        if secret is None:
            raise InvalidKey("No API key: send it as 'Authorization: Bearer <key>'.")
        if self.admin_key is not None and hmac.compare_digest(
            secret.encode(), self.admin_key.encode()
        ):
            return ADMIN
        return await self.principal_by_hash(secret_hash(secret))

    async def principal_by_hash(self, hashed: str) -> Principal:
        """The key whose secret has this SHA-256 (how console logins remember their key)."""
        if self._admin_hash is not None and hmac.compare_digest(hashed, self._admin_hash):
            return ADMIN
        record, principal = await self._keys.get(hashed)
        now = time.time()
        if record is None or principal is None or not record.active(now):
            raise InvalidKey("Incorrect, revoked or expired API key.")
        if record.publishable:
            raise InsufficientScope(
                "This is a publishable key: the chat widget trades it, from one of its sites, "
                "for a visitor token (POST /widget/api/visitor); it calls nothing else.",
                code="publishable_key",
            )
        self._used[record.id] = now
        return principal

    async def publishable(self, secret: str) -> KeyRecord:
        """The active publishable key with this secret."""
        if not secret.startswith(PUBLISHABLE_PREFIX):
            raise InvalidKey("The widget needs a publishable key (pk-he-...).")
        record, _ = await self._keys.get(secret_hash(secret))
        now = time.time()
        if record is None or not record.publishable or not record.active(now):
            raise InvalidKey("Incorrect, revoked or expired publishable key.")
        self._used[record.id] = now
        return record

    def visited(self, key_id: str) -> None:
        """A visitor token of this key was used (its last use is recorded with the others)."""
        self._used[key_id] = time.time()

    async def _lookup(self, hashed: str) -> Known:
        record = await self.store.key_by_hash(hashed)
        principal = None
        if record is not None:
            agents = None if record.agents is None else frozenset(record.agents)
            principal = Principal(
                record.id,
                frozenset(record.scopes),
                agents,
                Rates(record.rpm, record.tpm),
                record.max_concurrency,
                ToolPolicy.of(record.tools),
                budget=Budget.of(record.budget, record.budget_period),
            )
        return record, principal

    async def flush_usage(self) -> None:
        used, self._used = self._used, {}
        if used:
            await self.store.touch_keys(used)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def check_exposure(authenticator: Authenticator, host: str, insecure: bool) -> None:
    """Open (no keys) is fine on loopback, with a warning; elsewhere it needs a flag."""
    if not await authenticator.is_open():
        return
    if is_loopback(host):
        log.warning("no API keys: anyone on this machine may call headend (headend keys create)")
        return
    if not insecure:
        raise ConfigError(
            [
                f"server.host: {host} is reachable from other machines and no API key exists; "
                "create one (headend keys create) or pass --insecure-no-auth"
            ]
        )
    log.warning("no API keys and bound to %s: anyone who can reach it may call headend", host)


class AuthMiddleware:
    """Finds the caller and checks the scope before any route runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        needed = required_scope(scope["method"], scope["path"])
        if needed is not None:
            services = scope["app"].state.services
            authenticator: Authenticator = services.auth
            headers = scope["headers"]
            try:
                secret = presented_secret(headers)
                token = cookie_token(headers) if secret is None else None
                if secret is not None and secret.startswith(VISITOR_PREFIX):
                    principal = await services.visitors.principal(secret, scope)
                elif token is not None and not await authenticator.is_open():
                    check_origin(scope["method"], headers)
                    principal = await services.logins.principal(token)
                else:
                    principal = await authenticator.principal(secret)
                if principal.visitor is not None and scope["path"] not in VISITOR_PATHS:
                    raise InsufficientScope(
                        "A visitor token may only chat (POST /v1/chat/completions) and read "
                        "its own conversation."
                    )
                if not principal.has(needed):
                    raise InsufficientScope(f"This key lacks the '{needed}' scope.")
            except APIError as exc:
                await refuse(scope, send, exc)
                return
            scope["state"]["principal"] = principal
            context = context_of(scope)
            if context is not None:
                context.key_id = principal.key_id
        await self.app(scope, receive, send)


def principal_of(scope: Scope) -> Principal:
    found: Principal = scope.get("state", {}).get("principal", OPEN)
    return found
