"""Visitors of the sites a publishable key serves: their tokens, and who they are.

``start`` trades a publishable key, at the origin check, for a visitor token; ``principal``
turns a token on a later request back into the caller. Both refuse a request whose
``Origin`` is not one of the key's sites, or that has none: a browser always sends it on
these calls, so a request without one is not the widget's.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

from headend.access import visitor_tokens as tokens
from headend.access.authenticator import AHEAD, Authenticator, visitor_principal
from headend.access.fresh import FreshCache
from headend.access.origins import request_origin
from headend.access.principal import Principal
from headend.access.visitor_tokens import LIFETIME, RENEWABLE, VisitorClaims
from headend.errors import InvalidKey, OriginNotAllowed
from headend.limits.base import Limiter, Rates
from headend.limits.refusals import take_visitor_rate
from headend.store.base import KeyRecord, Store

REFRESH_SECONDS = 1.0  # a revoked publishable key is refused everywhere within this
MISS_REFRESH = 0.1  # an unknown key is looked for again at most this often (a new key)


@dataclass(frozen=True, slots=True)
class Published:
    """The publishable keys as last read, and their sites."""

    keys: dict[str, KeyRecord]
    origins: frozenset[str]
    read_at: float  # monotonic, when the read began


@dataclass(frozen=True, slots=True)
class Started:
    token: str
    claims: VisitorClaims


def _check_origin(record: KeyRecord, origin: str | None) -> str:
    if origin is None:
        raise OriginNotAllowed(
            "A publishable key works only from a browser on one of its sites: the request "
            "has no Origin header."
        )
    if origin not in (record.origins or ()):
        raise OriginNotAllowed(
            f"This publishable key does not work from {origin}: it works only from the "
            "sites it was created for (headend keys create --publishable --origin ...)."
        )
    return origin


class Visitors:
    def __init__(self, store: Store, auth: Authenticator, limiter: Limiter) -> None:
        self.store = store
        self.auth = auth
        self.limiter = limiter
        self._published: FreshCache[None, Published] = FreshCache(
            self._load, REFRESH_SECONDS, AHEAD
        )
        # Keys ``start`` found active, and when (monotonic): a token minted for a key created
        # just after the published list was read is not refused for the list's age.
        self._seen: dict[str, tuple[KeyRecord, float]] = {}

    async def _load(self, _: None) -> Published:
        began = time.monotonic()
        keys = {k.id: k for k in await self.store.list_keys() if k.publishable}
        origins = frozenset(o for k in keys.values() for o in k.origins or ())
        return Published(keys, origins, began)

    async def _current(self, wanted: str | None = None) -> Published:
        """The publishable keys, read at most once a second, or sooner for a key not seen
        yet (one just created)."""
        found = await self._published.get(None)
        stale = time.monotonic() - found.read_at >= MISS_REFRESH
        if wanted is not None and wanted not in found.keys and stale:
            self._published.forget(None)
            found = await self._published.get(None)
        return found

    async def _record(self, key_id: str) -> KeyRecord | None:
        """The publishable key as last read; or as ``start`` found it, when that was after
        the read began (the key is newer than the list: a revocation is still seen within
        a second, as the list is read again by then)."""
        published = await self._current(key_id)
        record = published.keys.get(key_id)
        if record is None:
            seen = self._seen.get(key_id)
            if seen is not None and seen[1] > published.read_at:
                record = seen[0]
        return record

    async def origins(self) -> frozenset[str]:
        """Every active publishable key's sites: the origins CORS answers for."""
        return (await self._current()).origins

    async def start(
        self,
        secret: str,
        headers: list[tuple[bytes, bytes]],
        address: str | None,
        previous: str | None = None,
        user: str | None = None,
        user_hash: str | None = None,
    ) -> Started:
        """A visitor token for whoever asks from one of the key's sites: the same visitor
        as ``previous`` (a token of this key and site, issued within 30 days), or the
        signed-in ``user`` when the site vouches for them with ``user_hash``, or a new one."""
        record = await self.auth.publishable(secret)
        self._seen[record.id] = (record, time.monotonic())
        origin = _check_origin(record, request_origin(headers))
        assert record.signing_secret is not None
        if record.visitor_rpm:
            bucket = f"start:{record.id}:{address}"
            await take_visitor_rate(self.limiter, bucket, Rates(record.visitor_rpm), "address")
        now = time.time()
        visitor, first = tokens.new_visitor(), now
        if user is not None:
            expected = tokens.user_hash(record.signing_secret, user)
            if user_hash is None or not hmac.compare_digest(user_hash.lower(), expected):
                raise InvalidKey(
                    "The user's hash does not match: data-user-hash must be the hex "
                    "HMAC-SHA256 of data-user under the key's identity secret.",
                    code="invalid_user_hash",
                )
            visitor = tokens.signed_in_visitor(record.signing_secret, user)
        elif previous is not None:
            claims = tokens.verified(previous, record.signing_secret)
            if (
                claims is not None
                and claims.key_id == record.id
                and claims.origin == origin
                and claims.issued_at + RENEWABLE > now
                and not claims.visitor.startswith("u_")  # a signed-in user signs in again
            ):
                visitor, first = claims.visitor, claims.issued_at
        claims = VisitorClaims(record.id, visitor, origin, first, now + LIFETIME)
        return Started(tokens.mint(claims, record.signing_secret), claims)

    async def principal(self, token: str, scope: dict[str, object]) -> Principal:
        """The visitor a token names, if it is current, its key still active and the
        request comes from the token's site."""
        found = tokens.unverified(token)
        record = await self._record(found.key_id) if found else None
        claims = (
            tokens.verified(token, record.signing_secret)
            if record is not None and record.signing_secret is not None
            else None
        )
        if record is None or claims is None or not record.active(time.time()):
            raise InvalidKey("Incorrect or revoked visitor token.")
        if claims.expires_at <= time.time():
            raise InvalidKey(
                "The visitor token has expired: trade it for a fresh one at "
                "POST /widget/api/visitor.",
                code="visitor_token_expired",
            )
        headers: list[tuple[bytes, bytes]] = scope["headers"]  # type: ignore[assignment]
        origin = _check_origin(record, request_origin(headers))
        if origin != claims.origin:
            raise OriginNotAllowed(
                f"This visitor token was issued to {claims.origin}, not {origin}."
            )
        self.auth.visited(record.id)
        client = scope.get("client")
        address = client[0] if isinstance(client, tuple | list) else None
        return visitor_principal(record, claims.visitor, address)
