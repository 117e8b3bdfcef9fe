"""``create_app(settings)``: the ASGI application, everything built in its lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping

from starlette.applications import Starlette
from starlette.routing import Route

from headend.agents.registry import load_agents
from headend.agents.runner import AgentRunner
from headend.config import Settings
from headend.providers.base import Provider
from headend.providers.registry import builtin_provider_types
from headend.server.chat import ChatService
from headend.server.errors import EXCEPTION_HANDLERS
from headend.server.routes.chat import create_chat_completion
from headend.server.routes.health import health
from headend.server.routes.models import list_models, retrieve_model
from headend.server.services import Services

log = logging.getLogger(__name__)

ROUTES = [
    Route("/v1/chat/completions", create_chat_completion, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", retrieve_model, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
]


def create_app(settings: Settings, *, providers: Mapping[str, Provider] | None = None) -> Starlette:
    """The app for ``settings``; ``providers`` replaces the configured ones (tests, embedding).

    Agent files and provider sections are validated here, before anything is served, so a
    bad file fails at startup with the same messages as ``headend check``.
    """
    built = dict(providers) if providers is not None else builtin_provider_types().build(settings)
    agents = load_agents(settings.effective_agents_dir(), providers=built.keys())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        started: list[Provider] = []
        try:
            for provider in built.values():
                await provider.start()
                started.append(provider)
            app.state.services = Services(
                settings=settings,
                agents=agents,
                providers=built,
                chat=ChatService(AgentRunner(agents, built)),
            )
            log.info("serving %d agent(s): %s", len(agents), ", ".join(a.id for a in agents))
            yield
        finally:
            for provider in reversed(started):
                await provider.close()

    return Starlette(routes=ROUTES, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)
