"""Sites, as browsers name them in the ``Origin`` header: ``scheme://host[:port]``."""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(text: str) -> str:
    """An origin as a browser sends it (lower case, no default port, no path), or
    ``ValueError`` saying what is wrong."""
    parts = urlsplit(text.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"origin {text!r}: give scheme and host, as https://shop.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"origin {text!r}: an origin has no path, query or user")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"origin {text!r}: the port is not a number") from None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def request_origin(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The request's ``Origin``, as sent; None without one (or ``null``)."""
    for name, value in headers:
        if name == b"origin":
            origin = value.decode("latin-1").strip()
            return origin if origin and origin != "null" else None
    return None
