"""Issuing API keys, for the CLI and the admin API alike: the secret is shown once."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from headend.server.auth import display_prefix, new_secret, normalize_scopes, secret_hash
from headend.store.base import KeyRecord, Store
from headend.tools.policy import NONE, READ_ONLY, ToolPolicy
from headend.tools.registry import ToolRegistry, UnknownTool


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """A key's own limits; None: none of that kind."""

    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "max_concurrency"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive number")


def tool_grant(
    names: list[str] | None, no_tools: bool, read_only: bool, registry: ToolRegistry
) -> str | tuple[str, ...] | None:
    """What a new key's runs may use, from ``--tool``/``--no-tools``/``--read-only``."""
    if sum((bool(names), no_tools, read_only)) > 1:
        raise ValueError("give one of tools, no_tools and read_only")
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
            raise ValueError(f"tools: {exc}") from None
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class Issued:
    record: KeyRecord
    secret: str


async def create_key(
    store: Store,
    name: str,
    scopes: list[str],
    agents: list[str] | None = None,
    expires_in: float | None = None,
    limits: KeyLimits | None = None,
    tools: str | tuple[str, ...] | None = None,
) -> Issued:
    limits = limits or KeyLimits()
    secret = new_secret()
    now = time.time()
    record = KeyRecord(
        id=f"key_{secrets.token_hex(8)}",
        name=name,
        prefix=display_prefix(secret),
        scopes=normalize_scopes(scopes or ["chat", "models:read"]),
        agents=tuple(agents) if agents else None,
        created_at=now,
        expires_at=now + expires_in if expires_in else None,
        rpm=limits.rpm,
        tpm=limits.tpm,
        max_concurrency=limits.max_concurrency,
        tools=tools,
    )
    await store.create_key(record, secret_hash(secret))
    return Issued(record, secret)


async def rotate_key(store: Store, key_id: str) -> str | None:
    """A fresh secret for the key (same scopes, agents and limits); None if no such key."""
    secret = new_secret()
    if not await store.rotate_key(key_id, secret_hash(secret), display_prefix(secret)):
        return None
    return secret


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
        "tools": ToolPolicy.of(record.tools).describe(),
    }
