"""What the routes use, built once per app in its lifespan and read from ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from headend.agents.editor import AgentEditor
from headend.agents.registry import AgentRegistry
from headend.agents.versions import AgentVersions
from headend.config import Settings
from headend.console.logins import ConsoleLogins
from headend.observability.metrics import Metrics
from headend.providers.routes import RouteTable
from headend.server.auth import Authenticator
from headend.server.chat import ChatService
from headend.server.embeddings import EmbeddingService
from headend.server.responses import ResponseService
from headend.server.usage import UsageMeter
from headend.store.base import Store
from headend.widget.visitors import Visitors


@dataclass(slots=True)
class Services:
    settings: Settings
    agents: AgentRegistry
    versions: AgentVersions
    editor: AgentEditor
    routes: RouteTable
    store: Store
    chat: ChatService
    embeddings: EmbeddingService
    auth: Authenticator
    meter: UsageMeter
    responses: ResponseService
    logins: ConsoleLogins
    visitors: Visitors
    metrics: Metrics


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found
