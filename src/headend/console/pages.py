"""The console's page and assets, shipped in the package: plain HTML, CSS and an ES module,
no build step and nothing loaded from elsewhere. Every answer carries a strict
Content-Security-Policy (no inline script, nothing from other origins, never framed)."""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

from headend.errors import NotFound

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _static(name: str) -> Response:
    suffix = name[name.rfind(".") :] if "." in name else ""
    if "/" in name or name.startswith(".") or suffix not in CONTENT_TYPES:
        raise NotFound(f"No console file '{name}'.", code="unknown_url")
    path = resources.files("headend.console") / "static" / name
    if not path.is_file():
        raise NotFound(f"No console file '{name}'.", code="unknown_url")
    return Response(path.read_bytes(), media_type=CONTENT_TYPES[suffix], headers=SECURITY_HEADERS)


async def console_page(request: Request) -> Response:
    return _static("index.html")


async def console_asset(request: Request) -> Response:
    return _static(request.path_params["name"])


async def root(request: Request) -> Response:
    """The console for a browser; API clients keep the JSON answer they had (unknown path)."""
    if "text/html" in request.headers.get("accept", ""):
        return _static("index.html")
    raise NotFound(f"Unknown path: {request.method} /.", code="unknown_url")
