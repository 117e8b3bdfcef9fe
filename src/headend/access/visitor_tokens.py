"""Visitor tokens: what the widget carries instead of its publishable key.

A publishable key is traded, at the origin check, for a token naming the key, the visitor
and the site (origin), signed with HMAC-SHA256 under a key derived from the publishable
key's stored secret. Any instance sharing the store checks one without a lookup of its own.
A token is used for an hour; for thirty days after it was issued it may be traded for a
fresh one for the same visitor, which is how a returning visitor keeps their conversation.

Visitors signed in on the operator's site are named by the site: it passes the user id and
an HMAC of it under the key's identity secret (shown once, at creation), so nobody can claim
another user's conversation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import orjson

VISITOR_PREFIX = "vt-he-"
LIFETIME = 3600.0  # seconds a token is used
RENEWABLE = 30 * 86400.0  # seconds after issue it may be traded for a fresh one
MAX_TOKEN = 1024  # characters; anything longer is not a token


@dataclass(frozen=True, slots=True)
class VisitorClaims:
    key_id: str
    visitor: str
    origin: str
    issued_at: float  # when the visitor was first given a token (renewals keep it)
    expires_at: float


def _derive(secret: str, label: bytes) -> bytes:
    return hmac.new(secret.encode(), label, hashlib.sha256).digest()


def identity_secret(secret: str) -> str:
    """What the operator's server signs user ids with (``data-user-hash``)."""
    return _derive(secret, b"headend user identity").hex()


def user_hash(secret: str, user: str) -> str:
    """The ``data-user-hash`` a site computes for ``user``: hex HMAC-SHA256 of the user id
    under the key's identity secret."""
    return hmac.new(identity_secret(secret).encode(), user.encode(), hashlib.sha256).hexdigest()


def signed_in_visitor(secret: str, user: str) -> str:
    """A signed-in user's visitor id: the same on every device, not the user id itself."""
    return "u_" + _derive(secret, b"headend user:" + user.encode()).hex()[:32]


def new_visitor() -> str:
    return "v_" + secrets.token_hex(16)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, payload: str) -> str:
    key = _derive(secret, b"headend visitor token")
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def mint(claims: VisitorClaims, secret: str) -> str:
    payload = _b64(
        orjson.dumps(
            {
                "k": claims.key_id,
                "v": claims.visitor,
                "o": claims.origin,
                "i": int(claims.issued_at),
                "e": int(claims.expires_at),
            }
        )
    )
    return f"{VISITOR_PREFIX}{payload}.{_signature(secret, payload)}"


def unverified(token: str) -> VisitorClaims | None:
    """The claims as written, before the signature is checked (to find the key that signed
    them); None for anything that is not a well-formed token."""
    if len(token) > MAX_TOKEN or not token.startswith(VISITOR_PREFIX):
        return None
    payload, _, signature = token[len(VISITOR_PREFIX) :].partition(".")
    try:
        found = orjson.loads(_unb64(payload))
        claims = VisitorClaims(
            str(found["k"]), str(found["v"]), str(found["o"]), float(found["i"]), float(found["e"])
        )
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None
    return claims if signature else None


def verified(token: str, secret: str) -> VisitorClaims | None:
    """The token's claims if ``secret``'s key signed them (expired or not: callers decide)."""
    claims = unverified(token)
    if claims is None:
        return None
    payload, _, signature = token[len(VISITOR_PREFIX) :].partition(".")
    if not hmac.compare_digest(signature.encode(), _signature(secret, payload).encode()):
        return None
    return claims
