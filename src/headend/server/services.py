"""What the routes use, built once per app in its lifespan and read from ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from headend.access.authenticator import Authenticator
from headend.access.logins import ConsoleLogins
from headend.access.visitors import Visitors
from headend.agents.editor import AgentEditor
from headend.agents.registry import AgentRegistry
from headend.agents.versions import AgentVersions
from headend.config import Settings
from headend.knowledge.documents import Knowledge
from headend.observability.metrics import Metrics
from headend.providers.model_routes import RouteTable
from headend.runs.agent_calls import AgentCalls
from headend.runs.background import BackgroundRuns
from headend.runs.embedding_service import EmbeddingService
from headend.runs.response_runs import ResponseRuns
from headend.runs.service import RunService
from headend.runs.stored_responses import ResponseService
from headend.runs.usage import UsageMeter
from headend.store.base import Store
from headend.webhooks.sender import WebhookSender


@dataclass(slots=True)
class Services:
    settings: Settings
    agents: AgentRegistry
    agent_calls: AgentCalls  # an agent as one function: how MCP's tools/call reaches it
    versions: AgentVersions
    editor: AgentEditor
    routes: RouteTable
    store: Store
    runs: RunService
    background: BackgroundRuns
    webhooks: WebhookSender
    embeddings: EmbeddingService
    knowledge: Knowledge  # files, vector stores, their ingestion and search
    auth: Authenticator
    meter: UsageMeter
    responses: ResponseService
    response_runs: ResponseRuns
    logins: ConsoleLogins
    visitors: Visitors
    metrics: Metrics


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found
