"""Finding the caller by its secret: a key by the SHA-256 of its secret (read from the store,
cached a second), the bootstrap admin key compared in constant time, and open mode when
there is no key at all, which only a loopback address may run in (``check_exposure``).
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import time

from headend.access.fresh import FreshCache
from headend.access.principal import ADMIN, OPEN, Principal
from headend.access.secrets import PUBLISHABLE_PREFIX, secret_hash
from headend.errors import ConfigError, InsufficientScope, InvalidKey
from headend.guardrails.rules import GUARDRAILS, GuardrailSpec
from headend.limits.base import Rates
from headend.limits.budget import Budget
from headend.store.base import KeyRecord, Store
from headend.tools.policy import ToolPolicy

log = logging.getLogger(__name__)

CACHE_SECONDS = 1.0  # a revoked key is refused everywhere within this
AHEAD = 0.25  # seconds before then a key in use is read again, in the background

Known = tuple[KeyRecord | None, Principal | None]  # a secret hash's key, if any


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
        return record, key_principal(record) if record is not None else None

    async def caller_again(self, key_id: str | None, visitor: str | None) -> Principal:
        """Who started a background run, for the instance taking it up after a crash: the
        same key as it stands now, refused if it has been revoked or has expired since."""
        if key_id is None:
            return OPEN
        if key_id == ADMIN.key_id and self.admin_key is not None:
            return ADMIN
        record = next((key for key in await self.store.list_keys() if key.id == key_id), None)
        if record is None or not record.active(time.time()):
            raise InvalidKey("The key that started this response was revoked or has expired.")
        if visitor is not None:
            return visitor_principal(record, visitor, None)
        return key_principal(record)

    async def flush_usage(self) -> None:
        used, self._used = self._used, {}
        if used:
            await self.store.touch_keys(used)


def key_principal(record: KeyRecord) -> Principal:
    """What a (secret) key may do, as its record says."""
    return Principal(
        record.id,
        frozenset(record.scopes),
        None if record.agents is None else frozenset(record.agents),
        Rates(record.rpm, record.tpm),
        record.max_concurrency,
        ToolPolicy.of(record.tools),
        budget=Budget.of(record.budget, record.budget_period),
        require_approval=record.require_approval,
        guardrails=key_guardrails(record.guardrails),
    )


def visitor_principal(record: KeyRecord, visitor: str, address: str | None) -> Principal:
    """What a widget visitor of a publishable key may do: chat with the key's agents."""
    return Principal(
        key_id=record.id,
        scopes=frozenset({"chat"}),
        agents=frozenset(record.agents or ()),
        rates=Rates(record.rpm, record.tpm),
        max_concurrency=record.max_concurrency,
        tools=ToolPolicy.of(record.tools),
        visitor=visitor,
        address=address,
        visitor_rates=Rates(record.visitor_rpm),
        budget=Budget.of(record.budget, record.budget_period),
        require_approval=record.require_approval,
        guardrails=key_guardrails(record.guardrails),
    )


@functools.lru_cache(maxsize=256)
def key_guardrails(text: str | None) -> tuple[GuardrailSpec, ...]:
    """A key's guardrails from its record's JSON (checked when the key was issued)."""
    if not text:
        return ()
    return tuple(GUARDRAILS.validate_json(text))


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
