"""Requests to their handlers: fixed paths by one dict lookup, the rest by Starlette's router.

Starlette puts five layers between its middleware and a handler (its error and exception
middleware, the router's scan of the routes, the route's exception wrapper and its
request-response adapter), each wrapping ``send`` again; on a gateway relaying thousands
of requests a second they were a fifth of the CPU headend spent per request. A route
whose path has no parameters is looked up by method and path and called directly, its
``APIError`` turned into the surface's envelope here; any other path, method or error
takes Starlette's way as before. An unexpected exception reaches ``RequestContextMiddleware``
either way, which logs it and answers 500 (so Starlette's own error middleware is left out).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence

from starlette.applications import Starlette
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from headend.errors import APIError

Endpoint = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


def fixed_routes(routes: Sequence[BaseRoute]) -> dict[tuple[str, str], Endpoint]:
    """``(method, path)`` to handler for every route without path parameters whose handler
    takes a request (HEAD, which Starlette adds to GET, and ASGI apps stay with Starlette)."""
    found: dict[tuple[str, str], Endpoint] = {}
    for route in routes:
        if not isinstance(route, Route) or route.param_convertors or not route.methods:
            continue
        if inspect.isfunction(route.endpoint) or inspect.ismethod(route.endpoint):
            for method in route.methods - {"HEAD"}:
                found.setdefault((method, route.path), route.endpoint)
    return found


class FixedRoutes:
    def __init__(
        self, app: ASGIApp, routes: dict[tuple[str, str], Endpoint], on_error: ErrorHandler
    ) -> None:
        self.app = app
        self.routes = routes
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.routes.get((scope["method"], scope["path"]))
            if endpoint is not None:
                request = Request(scope, receive, send)
                try:
                    response = await endpoint(request)
                except APIError as exc:
                    response = await self.on_error(request, exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class HeadendApp(Starlette):
    """Starlette with the dispatch above under the app's middleware; its exception handlers
    must include one for ``APIError``."""

    def build_middleware_stack(self) -> ASGIApp:
        handlers = self.exception_handlers
        app: ASGIApp = ExceptionMiddleware(self.router, handlers=handlers)
        on_error: ErrorHandler = handlers[APIError]
        app = FixedRoutes(app, fixed_routes(self.router.routes), on_error)
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app
