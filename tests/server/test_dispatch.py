"""Fixed paths go straight to their handler; everything else keeps Starlette's routing."""

from __future__ import annotations

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from headend.errors import InvalidRequest
from headend.server.dispatch import HeadendApp, fixed_routes
from headend.server.error_handlers import EXCEPTION_HANDLERS


async def hello(request: Request) -> Response:
    return Response(f"hello {request.method}")


async def refuse(request: Request) -> Response:
    raise InvalidRequest("no", param="x")


async def item(request: Request) -> Response:
    return Response(request.path_params["name"])


ROUTES = [
    Route("/v1/hello", hello, methods=["GET", "POST"]),
    Route("/v1/refuse", refuse, methods=["POST"]),
    Route("/v1/items/{name}", item, methods=["GET"]),
]


def test_only_paths_without_parameters_are_fixed() -> None:
    assert fixed_routes(ROUTES) == {
        ("GET", "/v1/hello"): hello,
        ("POST", "/v1/hello"): hello,
        ("POST", "/v1/refuse"): refuse,
    }


async def test_fixed_and_routed_paths_answer_alike() -> None:
    app = HeadendApp(routes=ROUTES, exception_handlers=EXCEPTION_HANDLERS)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        assert (await client.post("/v1/hello")).text == "hello POST"
        assert (await client.get("/v1/items/x")).text == "x"  # Starlette's router
        assert (await client.head("/v1/hello")).status_code == 200
        refused = await client.post("/v1/refuse")
        assert refused.status_code == 400
        assert refused.json()["error"]["param"] == "x"  # the envelope, from the fixed path
        wrong = await client.delete("/v1/hello")  # a fixed path, another method
        assert wrong.status_code == 405
        assert wrong.json()["error"]["type"] == "invalid_request_error"
        assert (await client.get("/v1/nothing")).json()["error"]["code"] == "unknown_url"
