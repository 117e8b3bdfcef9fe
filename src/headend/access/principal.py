"""The caller and what it may do: scopes, the agents it may use, its limits and tools.

Each request needs one scope (``server.auth.required_scope`` says which): ``chat`` (alias
``chat:write``), ``knowledge`` (files and vector stores: what ``chat`` includes, for a key
that only feeds documents), ``models:read``, ``sessions:read``, ``metrics``,
``agents:write`` and ``admin``; a scope includes the ones ``WIDER`` says it does.
"""

from __future__ import annotations

from dataclasses import dataclass

from headend.agents.versions import draft_of
from headend.errors import InsufficientScope
from headend.guardrails.rules import GuardrailSpec
from headend.limits.base import NO_RATES, Rates
from headend.limits.budget import Budget
from headend.tools.policy import EVERY_TOOL, ToolPolicy

SCOPES = ("chat", "knowledge", "models:read", "sessions:read", "metrics", "agents:write", "admin")
AGENTS_WRITE = "agents:write"
# A scope, and the next one that includes it: who may change agents may list them, who
# may chat may keep files and vector stores.
WIDER = {"models:read": AGENTS_WRITE, AGENTS_WRITE: "admin", "knowledge": "chat"}
SCOPE_ALIASES = {"chat:write": "chat"}


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
    require_approval: bool = False  # its calls that do more than read ask a person first
    guardrails: tuple[GuardrailSpec, ...] = ()  # the key's: on every run it makes

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


def check_draft_access(name: str, principal: Principal) -> None:
    """The one rule for ``<agent>@draft``, wherever a model is named (chat, ``/v1/models``):
    drafts are for the keys that write them."""
    if draft_of(name) is not None and not principal.has(AGENTS_WRITE):
        raise InsufficientScope(
            f"'{name}' is an agent's draft: running or reading it needs the "
            f"'{AGENTS_WRITE}' scope (admin includes it)."
        )
