"""``/console/api/session``: sign in with a key (once), see who is signed in, sign out."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from headend.access.logins import LIFETIME
from headend.access.principal import OPEN, Principal
from headend.errors import InvalidKey
from headend.schemas.validation import validate
from headend.server.cookies import COOKIE, check_origin, cookie_token
from headend.server.json_bodies import decode_json, json_response, read_body
from headend.server.services import services


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    key: str = Field(min_length=1, max_length=512, repr=False)


def _described(principal: Principal) -> dict[str, object]:
    return {
        "object": "console.session",
        "key_id": principal.key_id,
        "scopes": sorted(principal.granted()),  # what the pages may offer
        "agents": sorted(principal.agents) if principal.agents is not None else None,
        "tools": principal.tools.describe(),
        "open": principal is OPEN,
    }


def _cookie(response: Response, request: Request, token: str, max_age: int) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


async def sign_in(request: Request) -> Response:
    found = services(request)
    check_origin(request.method, request.scope["headers"])  # no signing in from other sites
    body = validate(
        SignIn, decode_json(await read_body(request, found.settings.server.max_body_bytes))
    )
    if await found.auth.is_open():  # no keys: nothing to sign in with, and no need
        return json_response(_described(OPEN))
    token, principal = await found.logins.sign_in(body.key)
    response = json_response(_described(principal))
    _cookie(response, request, token, int(LIFETIME))
    return response


async def whoami(request: Request) -> Response:
    found = services(request)
    if await found.auth.is_open():
        return json_response(_described(OPEN))
    token = cookie_token(request.scope["headers"])
    if token is None:
        raise InvalidKey("Not signed in to the console.")
    return json_response(_described(await found.logins.principal(token)))


async def sign_out(request: Request) -> Response:
    check_origin(request.method, request.scope["headers"])
    token = cookie_token(request.scope["headers"])
    if token is not None:
        await services(request).logins.sign_out(token)
    response = json_response({"object": "console.session", "signed_out": True})
    _cookie(response, request, "", 0)
    return response
