"""Console sign-in: an API key, given once, exchanged for an HttpOnly cookie
(``headend.server.cookies`` reads it and guards its use).

The cookie holds a random token; the store keeps only the token's SHA-256, with the key (by
its secret's hash, so revoking or rotating the key ends every login made with it) and an
expiry. A request that carries no key but this cookie acts as that key.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from headend.access.authenticator import AHEAD, Authenticator
from headend.access.fresh import FreshCache
from headend.access.principal import Principal
from headend.access.secrets import secret_hash
from headend.errors import InvalidKey
from headend.store.base import ConsoleLogin, Store

LIFETIME = 12 * 3600.0  # seconds a sign-in lasts
CACHE_SECONDS = 1.0  # a sign-out on another instance takes effect within this


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ConsoleLogins:
    def __init__(self, store: Store, auth: Authenticator) -> None:
        self.store = store
        self.auth = auth
        self._logins: FreshCache[str, ConsoleLogin | None] = FreshCache(
            self._lookup, CACHE_SECONDS, AHEAD
        )

    async def sign_in(self, secret: str) -> tuple[str, Principal]:
        """A new login for a valid key: the cookie token (shown to the browser only)."""
        principal = await self.auth.principal(secret)
        token = secrets.token_urlsafe(32)
        login = ConsoleLogin(principal.key_id or "", secret_hash(secret), time.time() + LIFETIME)
        await self.store.save_console_login(token_hash(token), login)
        return token, principal

    async def principal(self, token: str) -> Principal:
        login = await self._logins.get(token_hash(token))
        if login is None or login.expires_at <= time.time():
            raise InvalidKey("This console sign-in has ended: sign in again.")
        return await self.auth.principal_by_hash(login.secret_hash)

    async def sign_out(self, token: str) -> None:
        hashed = token_hash(token)
        self._logins.forget(hashed)
        await self.store.end_console_login(hashed)

    async def _lookup(self, hashed: str) -> ConsoleLogin | None:
        return await self.store.console_login(hashed, time.time())
