"""Issuing API keys, for the CLI and the admin API alike: the secret is shown once."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from headend.access.origins import normalize_origin
from headend.access.principal import normalize_scopes
from headend.access.secrets import (
    PUBLISHABLE_PREFIX,
    SECRET_PREFIX,
    display_prefix,
    new_secret,
    secret_hash,
)
from headend.access.visitor_tokens import identity_secret
from headend.guardrails.rules import GUARDRAILS, GuardrailSpec
from headend.limits.budget import Budget
from headend.observability import audit_log
from headend.store.base import KeyRecord, Store
from headend.tools.policy import NONE, READ_ONLY, ToolPolicy
from headend.tools.registry import ToolRegistry, UnknownTool


class KeySettingError(ValueError):
    """A new key's settings that cannot be; ``param`` names the field as the admin API
    does (the CLI's flag has the same name in the singular)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """A key's own limits; None: none of that kind."""

    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None
    budget: Budget | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "max_concurrency"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise KeySettingError(f"{name} must be a positive number", name)


def tool_grant(
    names: list[str] | None, no_tools: bool, read_only: bool, registry: ToolRegistry
) -> str | tuple[str, ...] | None:
    """What a new key's runs may use, from ``--tool``/``--no-tools``/``--read-only``."""
    if sum((bool(names), no_tools, read_only)) > 1:
        raise KeySettingError("give one of tools, no_tools and read_only", "tools")
    if no_tools:
        return NONE
    if read_only:
        return READ_ONLY
    if not names:
        return None
    for name in names:
        try:
            registry.check(name)
        except UnknownTool as exc:
            raise KeySettingError(f"tools: {exc}", "tools") from None
    return tuple(dict.fromkeys(names))


DEFAULT_SCOPES = ("chat", "models:read")  # a key's when none is given


def _scopes(scopes: list[str]) -> tuple[str, ...]:
    try:
        return normalize_scopes(scopes)
    except ValueError as exc:
        raise KeySettingError(str(exc), "scopes") from None


PUBLISHABLE_RPM = 300  # a publishable key's requests per minute unless given
VISITOR_RPM = 10  # each visitor's (and client address's) unless given


@dataclass(frozen=True, slots=True)
class Publishable:
    """What makes a key publishable: the sites it works from, each visitor's rate."""

    origins: tuple[str, ...]
    visitor_rpm: int | None = None

    @classmethod
    def of(cls, origins: list[str] | None, visitor_rpm: int | None) -> Publishable:
        if not origins:
            raise KeySettingError(
                "a publishable key needs at least one origin (--origin)", "origins"
            )
        if visitor_rpm is not None and visitor_rpm < 1:
            raise KeySettingError("visitor_rpm must be a positive number", "visitor_rpm")
        try:
            normalized = tuple(dict.fromkeys(normalize_origin(o) for o in origins))
        except ValueError as exc:
            raise KeySettingError(str(exc), "origins") from None
        return cls(normalized, visitor_rpm)


def guardrails_json(guardrails: Sequence[GuardrailSpec]) -> str | None:
    """A key's guardrails as its record keeps them (None: it has none)."""
    if not guardrails:
        return None
    return orjson.dumps(
        [g.model_dump(mode="json", exclude_defaults=True) | {"check": g.check} for g in guardrails]
    ).decode()


def read_guardrails(data: object, param: str = "guardrails") -> list[GuardrailSpec]:
    """A guardrails list given for a key (parsed JSON or YAML), checked to the field."""
    try:
        return GUARDRAILS.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise KeySettingError(f"guardrails.{where}: {first['msg']}", param) from None


async def known_names(store: Store, served: Iterable[str], routes: Iterable[str]) -> set[str]:
    """What a key may be limited to: the agents ``served`` (their files), those made through
    the API (drafted or published: they are in the store), and the model ``routes``."""
    stored = {agent.id for agent in await store.stored_agents()}
    return set(served) | stored | set(routes)


def check_agents(agents: list[str] | None, known: Collection[str], scopes: list[str]) -> None:
    """Every name a key is limited to is an agent or a model route this server knows, but
    for a key that may write agents: the names it is limited to are the agents it may make."""
    if any(scope in ("agents:write", "admin") for scope in scopes):
        return
    unknown = [name for name in agents or () if name not in known]
    if unknown:
        raise KeySettingError(
            f"no agent or model route is named {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(sorted(known)) or 'none'})",
            "agents",
        )


@dataclass(frozen=True, slots=True)
class Issued:
    record: KeyRecord
    secret: str

    @property
    def identity_secret(self) -> str | None:
        """A publishable key's secret for signing its sites' user ids (``data-user-hash``)."""
        signing = self.record.signing_secret
        return identity_secret(signing) if signing is not None else None


async def create_key(
    store: Store,
    name: str,
    scopes: list[str],
    agents: list[str] | None = None,
    expires_in: float | None = None,
    limits: KeyLimits | None = None,
    tools: str | tuple[str, ...] | None = None,
    publishable: Publishable | None = None,
    *,
    by: str | None,
    require_approval: bool = False,
    guardrails: Sequence[GuardrailSpec] = (),
) -> Issued:
    """A new key, issued by ``by`` (the audit's actor). A publishable one chats only, on its
    listed agents (one at least), from its sites; by default its runs use only tools that
    read, and its rates are capped."""
    limits = limits or KeyLimits()
    secret = new_secret(PUBLISHABLE_PREFIX if publishable else SECRET_PREFIX)
    now = time.time()
    if publishable is not None:
        if not agents:
            raise KeySettingError("a publishable key needs at least one agent (--agent)", "agents")
        if scopes and _scopes(scopes) != ("chat",):
            raise KeySettingError("a publishable key has the chat scope only", "scopes")
        scopes = ["chat"]
        tools = READ_ONLY if tools is None else tools
        limits = dataclasses.replace(limits, rpm=limits.rpm or PUBLISHABLE_RPM)
    record = KeyRecord(
        id=f"key_{secrets.token_hex(8)}",
        name=name,
        prefix=display_prefix(secret),
        scopes=_scopes(scopes or list(DEFAULT_SCOPES)),
        agents=tuple(agents) if agents else None,
        created_at=now,
        expires_at=now + expires_in if expires_in else None,
        rpm=limits.rpm,
        tpm=limits.tpm,
        max_concurrency=limits.max_concurrency,
        tools=tools,
        origins=publishable.origins if publishable else None,
        visitor_rpm=(publishable.visitor_rpm or VISITOR_RPM) if publishable else None,
        signing_secret=secrets.token_urlsafe(32) if publishable else None,
        budget=limits.budget.amount if limits.budget else None,
        budget_period=limits.budget.period if limits.budget else None,
        require_approval=require_approval,
        guardrails=guardrails_json(guardrails),
    )
    await store.create_key(record, secret_hash(secret))
    await audit_log.record(store, by, "key.create", record.id, **settings_of(record))
    return Issued(record, secret)


def settings_of(record: KeyRecord) -> dict[str, object]:
    """What a key was issued with, as the audit keeps it (no secret, no history)."""
    shown = describe(record)
    for passing in ("id", "object", "created_at", "revoked_at", "last_used_at"):
        del shown[passing]
    return {name: value for name, value in shown.items() if value is not None}


async def rotate_key(store: Store, key_id: str, *, by: str | None) -> str | None:
    """A fresh secret for the key (same scopes, agents and limits); None if no such key.
    A publishable key's visitors keep their tokens (they are signed with another secret)."""
    found = [k for k in await store.list_keys() if k.id == key_id]
    publishable = bool(found) and found[0].publishable
    secret = new_secret(PUBLISHABLE_PREFIX if publishable else SECRET_PREFIX)
    prefix = display_prefix(secret)
    if not await store.rotate_key(key_id, secret_hash(secret), prefix):
        return None
    await audit_log.record(store, by, "key.rotate", key_id, prefix=prefix)
    return secret


async def revoke_key(store: Store, key_id: str, *, by: str | None) -> bool:
    """Revoke an active key; False if there is none with this id."""
    if not await store.revoke_key(key_id, time.time()):
        return False
    await audit_log.record(store, by, "key.revoke", key_id)
    return True


def describe(record: KeyRecord) -> dict[str, object]:
    """A key as listed: everything but a secret."""
    return {
        "id": record.id,
        "object": "api_key",
        "name": record.name,
        "prefix": record.prefix,
        "scopes": list(record.scopes),
        "agents": list(record.agents) if record.agents else None,
        "created_at": int(record.created_at),
        "expires_at": int(record.expires_at) if record.expires_at else None,
        "revoked_at": int(record.revoked_at) if record.revoked_at else None,
        "last_used_at": int(record.last_used_at) if record.last_used_at else None,
        "rpm": record.rpm,
        "tpm": record.tpm,
        "max_concurrency": record.max_concurrency,
        "budget": record.budget,
        "budget_period": record.budget_period,
        "tools": ToolPolicy.of(record.tools).describe(),
        "require_approval": record.require_approval,
        "guardrails": orjson.loads(record.guardrails) if record.guardrails else None,
        "publishable": record.publishable,
        "origins": list(record.origins) if record.origins is not None else None,
        "visitor_rpm": record.visitor_rpm,
    }
