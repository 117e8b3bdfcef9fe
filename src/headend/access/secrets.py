"""API key secrets: their form, and the hash a key is found by (secrets are never stored)."""

from __future__ import annotations

import hashlib
import secrets

SECRET_PREFIX = "sk-he-"
PUBLISHABLE_PREFIX = "pk-he-"


def new_secret(prefix: str = SECRET_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[: len(SECRET_PREFIX) + 6]  # both prefixes have the same length
