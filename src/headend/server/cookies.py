"""The console cookie on a request: reading it, and guarding what it may do.

A request that carries no key but the console cookie acts as the key its login was made
with. Since a browser sends cookies by itself, a cookie request that may change something
must come from headend's own pages: its ``Origin`` must name the host it was sent to.
``SameSite=Strict`` already keeps other sites' requests from carrying the cookie; the Origin
check holds even where a browser does not honour that.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from headend.errors import InsufficientScope

COOKIE = "headend_console"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cookie_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The console cookie's token, if the request carries one."""
    prefix = COOKIE.encode() + b"="
    for name, value in headers:
        if name != b"cookie":
            continue
        for part in value.split(b";"):
            part = part.strip()
            if part.startswith(prefix):
                return part[len(prefix) :].decode("latin-1") or None
    return None


def check_origin(method: str, headers: list[tuple[bytes, bytes]]) -> None:
    """Refuse a cookie-authenticated request that may change something unless it comes
    from this host's own pages."""
    if method in SAFE_METHODS:
        return
    found = {name: value for name, value in headers if name in (b"origin", b"host")}
    origin = found.get(b"origin", b"").decode("latin-1")
    host = found.get(b"host", b"").decode("latin-1").lower()
    if not origin or urlsplit(origin).netloc.lower() != host:
        raise InsufficientScope(
            "A console request that changes something must come from headend's own pages "
            "(its Origin header must name this host)."
        )
