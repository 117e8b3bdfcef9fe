"""URLs as headend may print them: never with their credentials."""

from __future__ import annotations


def without_credentials(url: str) -> str:
    """``redis://user:secret@host:6379/0`` -> ``redis://…@host:6379/0``."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    return f"{scheme}{sep}…@{rest.rsplit('@', 1)[1]}"
