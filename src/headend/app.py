"""``create_app(settings)``: the ASGI application, everything built in its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute

from headend import __version__
from headend.access.authenticator import Authenticator, check_exposure
from headend.access.logins import ConsoleLogins
from headend.access.visitors import Visitors
from headend.agents.editor import AgentEditor
from headend.agents.knowledge_files import agent_home, check_embeddings, knowledge_files
from headend.agents.live import LiveAgents
from headend.agents.registry import (
    AgentRegistry,
    check_chat_targets,
    check_judges,
    load_agents,
    skipped_notes,
)
from headend.agents.versions import AgentVersions
from headend.config import Settings, check_webhooks
from headend.console.agents import list_agents
from headend.console.pages import console_asset, console_page, root
from headend.console.routes import sign_in, sign_out, whoami
from headend.knowledge.agent_sync import AgentKnowledgeSync, Wanted
from headend.knowledge.documents import Knowledge
from headend.knowledge.embedder import Embedders
from headend.knowledge.ingest import Ingester
from headend.knowledge.search import Searcher
from headend.limits.base import Limiter
from headend.limits.open import open_limiter
from headend.observability.access_log import AccessLog
from headend.observability.logs import ACCESS_LOGGER
from headend.observability.metrics import Metrics
from headend.observability.store import timed_store
from headend.observability.tracing import Tracing, tracing_from_env
from headend.providers.base import Provider, Resources
from headend.providers.h1 import H1Client
from headend.providers.model_routes import RouteTable
from headend.providers.registry import builtin_provider_types
from headend.providers.router import Router
from headend.providers.startup import ProviderStartup
from headend.runs.admission import Admission
from headend.runs.agent_calls import AgentCalls
from headend.runs.approvals import Approvals
from headend.runs.background import BackgroundRuns
from headend.runs.budgets import BudgetBook
from headend.runs.embedding_service import EmbeddingService
from headend.runs.guarding import Guardrails
from headend.runs.response_runs import ResponseRuns
from headend.runs.schedules import ScheduledRuns, Scheduler
from headend.runs.service import RunService
from headend.runs.session_turns import SessionService
from headend.runs.stored_responses import ResponseService
from headend.runs.takeover import RunTakeover
from headend.runs.usage import UsageMeter
from headend.server.auth import AuthMiddleware
from headend.server.context import RequestContextMiddleware
from headend.server.dispatch import HeadendApp
from headend.server.error_handlers import EXCEPTION_HANDLERS
from headend.server.idempotency import IdempotencyMiddleware
from headend.server.mcp_agents import AgentToolServer, McpEndpoint
from headend.server.observer import RequestObserver
from headend.server.readiness import Readiness
from headend.server.routes.a2a import CARD_PATH, agent_card_route, agent_rpc, list_agent_cards
from headend.server.routes.admin import list_keys, post_key, revoke, rotate, usage
from headend.server.routes.admin_agents import (
    create_agent,
    delete_agent,
    diff,
    discard_draft,
    list_managed_agents,
    list_versions,
    publish,
    retrieve_agent,
    save_draft,
)
from headend.server.routes.admin_background import list_runs, run_steps
from headend.server.routes.admin_schedules import list_schedules
from headend.server.routes.admin_webhooks import list_deliveries
from headend.server.routes.audit import list_audit
from headend.server.routes.chat import create_chat_completion
from headend.server.routes.completions import create_completion
from headend.server.routes.embeddings import create_embeddings
from headend.server.routes.files import (
    create_file,
    delete_file,
    file_content,
    list_files,
    retrieve_file,
)
from headend.server.routes.health import health, ready
from headend.server.routes.messages import count_tokens, create_message
from headend.server.routes.models import list_models, retrieve_model
from headend.server.routes.prometheus import metrics as metrics_route
from headend.server.routes.responses import (
    cancel_response,
    create_response,
    delete_response,
    list_input_items,
    responses_get,
    retrieve_response,
)
from headend.server.routes.responses_socket import ResponsesSocketEndpoint
from headend.server.routes.session_approvals import answer_approval, list_approvals
from headend.server.routes.sessions import (
    create_session,
    delete_session,
    list_sessions,
    post_message,
    retrieve_session,
)
from headend.server.routes.vector_stores import (
    cancel_batch,
    create_batch,
    create_store_file,
    create_vector_store,
    delete_store_file,
    delete_vector_store,
    list_store_files,
    list_vector_stores,
    retrieve_batch,
    retrieve_store_file,
    retrieve_vector_store,
    search_vector_store,
    store_file_content,
    update_store_file,
    update_vector_store,
)
from headend.server.services import Services
from headend.store import open_store
from headend.store.base import Store
from headend.store.knowledge import KnowledgeStore
from headend.tools.mcp import McpHub
from headend.tools.registry import ToolRegistry, builtin_tools
from headend.webhooks.sender import WebhookSender
from headend.widget.cors import WidgetCors
from headend.widget.routes import (
    answer_visitor_approval,
    conversation,
    start_visit,
    widget_script,
)

log = logging.getLogger(__name__)

_STORE_FILE = "/v1/vector_stores/{vector_store_id}/files/{file_id}"
_BATCH = "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}"
ROUTES = [
    Route("/v1/chat/completions", create_chat_completion, methods=["POST"]),
    Route("/v1/completions", create_completion, methods=["POST"]),
    Route("/v1/embeddings", create_embeddings, methods=["POST"]),
    Route("/v1/responses", create_response, methods=["POST"]),
    Route("/v1/responses", responses_get, methods=["GET"]),
    WebSocketRoute("/v1/responses", ResponsesSocketEndpoint()),
    Route("/mcp", McpEndpoint(), methods=["POST"]),
    Route("/a2a", list_agent_cards, methods=["GET"]),
    Route("/a2a/{agent}" + CARD_PATH, agent_card_route, methods=["GET"]),
    Route("/a2a/{agent}", agent_rpc, methods=["POST"]),
    Route("/v1/responses/{response_id}", retrieve_response, methods=["GET"]),
    Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
    Route("/v1/responses/{response_id}/cancel", cancel_response, methods=["POST"]),
    Route("/v1/responses/{response_id}/input_items", list_input_items, methods=["GET"]),
    Route("/v1/files", create_file, methods=["POST"]),
    Route("/v1/files", list_files, methods=["GET"]),
    Route("/v1/files/{file_id}", retrieve_file, methods=["GET"]),
    Route("/v1/files/{file_id}", delete_file, methods=["DELETE"]),
    Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
    Route("/v1/vector_stores", create_vector_store, methods=["POST"]),
    Route("/v1/vector_stores", list_vector_stores, methods=["GET"]),
    Route("/v1/vector_stores/{vector_store_id}", retrieve_vector_store, methods=["GET"]),
    Route("/v1/vector_stores/{vector_store_id}", update_vector_store, methods=["POST"]),
    Route("/v1/vector_stores/{vector_store_id}", delete_vector_store, methods=["DELETE"]),
    Route("/v1/vector_stores/{vector_store_id}/search", search_vector_store, methods=["POST"]),
    Route("/v1/vector_stores/{vector_store_id}/files", create_store_file, methods=["POST"]),
    Route("/v1/vector_stores/{vector_store_id}/files", list_store_files, methods=["GET"]),
    Route(_STORE_FILE, retrieve_store_file, methods=["GET"]),
    Route(_STORE_FILE, update_store_file, methods=["POST"]),
    Route(_STORE_FILE, delete_store_file, methods=["DELETE"]),
    Route(_STORE_FILE + "/content", store_file_content, methods=["GET"]),
    Route("/v1/vector_stores/{vector_store_id}/file_batches", create_batch, methods=["POST"]),
    Route(_BATCH, retrieve_batch, methods=["GET"]),
    Route(_BATCH + "/cancel", cancel_batch, methods=["POST"]),
    Route(_BATCH + "/files", list_store_files, methods=["GET"]),
    Route("/v1/messages", create_message, methods=["POST"]),
    Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", retrieve_model, methods=["GET"]),
    Route("/v1/sessions", create_session, methods=["POST"]),
    Route("/v1/sessions", list_sessions, methods=["GET"]),
    Route("/v1/sessions/{session_id}", retrieve_session, methods=["GET"]),
    Route("/v1/sessions/{session_id}", delete_session, methods=["DELETE"]),
    Route("/v1/sessions/{session_id}/messages", post_message, methods=["POST"]),
    Route("/v1/sessions/{session_id}/approvals", list_approvals, methods=["GET"]),
    Route("/v1/sessions/{session_id}/approvals/{approval_id}", answer_approval, methods=["POST"]),
    Route("/admin/keys", list_keys, methods=["GET"]),
    Route("/admin/keys", post_key, methods=["POST"]),
    Route("/admin/keys/{key_id}", revoke, methods=["DELETE"]),
    Route("/admin/keys/{key_id}/rotate", rotate, methods=["POST"]),
    Route("/admin/usage", usage, methods=["GET"]),
    Route("/admin/audit", list_audit, methods=["GET"]),
    Route("/admin/webhooks/deliveries", list_deliveries, methods=["GET"]),
    Route("/admin/background", list_runs, methods=["GET"]),
    Route("/admin/background/{response_id}", run_steps, methods=["GET"]),
    Route("/admin/schedules", list_schedules, methods=["GET"]),
    Route("/admin/agents", list_managed_agents, methods=["GET"]),
    Route("/admin/agents", create_agent, methods=["POST"]),
    Route("/admin/agents/{agent_id}", retrieve_agent, methods=["GET"]),
    Route("/admin/agents/{agent_id}", delete_agent, methods=["DELETE"]),
    Route("/admin/agents/{agent_id}/draft", save_draft, methods=["PUT"]),
    Route("/admin/agents/{agent_id}/draft", discard_draft, methods=["DELETE"]),
    Route("/admin/agents/{agent_id}/publish", publish, methods=["POST"]),
    Route("/admin/agents/{agent_id}/versions", list_versions, methods=["GET"]),
    Route("/admin/agents/{agent_id}/diff", diff, methods=["GET"]),
    Route("/", root, methods=["GET"]),
    Route("/console", console_page, methods=["GET"]),
    Route("/console/static/{name}", console_asset, methods=["GET"]),
    Route("/console/api/session", sign_in, methods=["POST"]),
    Route("/console/api/session", whoami, methods=["GET"]),
    Route("/console/api/session", sign_out, methods=["DELETE"]),
    Route("/console/api/agents", list_agents, methods=["GET"]),
    Route("/widget.js", widget_script, methods=["GET"]),
    Route("/widget/api/visitor", start_visit, methods=["POST"]),
    Route("/widget/api/conversation", conversation, methods=["GET"]),
    Route("/widget/api/approval", answer_visitor_approval, methods=["POST"]),
    Route("/health", health, methods=["GET"]),
    Route("/health/ready", ready, methods=["GET"]),
    Route("/metrics", metrics_route, methods=["GET"]),
]


def agents_knowledge(versions: AgentVersions, default_embedding: str) -> dict[str, Wanted]:
    """The files each agent's ``knowledge:`` names now, and the model that embeds them
    (agents that name none: none)."""
    wanted = {}
    for agent in versions.agents:
        spec = agent.spec.knowledge
        if spec is not None:
            home = agent_home(agent.spec.source, versions.agents.directory)
            files = knowledge_files(spec, home)[0]
            wanted[agent.id] = Wanted(files, spec.embedding or default_embedding)
    return wanted


@contextlib.asynccontextmanager
async def upstream_client() -> AsyncIterator[H1Client]:
    """The one upstream HTTP client: pooled keep-alive connections, no cookies; each
    provider names its own egress proxy, if any (``headend.proxies``)."""
    client = H1Client(f"headend/{__version__}")
    try:
        yield client
    finally:
        await client.close()


PRUNE_EVERY = 3600.0


async def prune_forever(store: Store, ttl: float | None) -> None:
    """Forget expired idempotency keys and, with a ``ttl``, delete sessions idle for longer,
    now and every hour after."""
    while True:
        try:
            now = time.time()
            await store.prune_idempotency(now)
            gone = await store.prune(now - ttl) if ttl is not None else 0
        except Exception:  # a failed prune must not take the server down; it is retried
            log.exception("pruning the store failed")
        else:
            if gone:
                log.info("pruned %d session(s) idle for more than %g s", gone, ttl)
        await asyncio.sleep(PRUNE_EVERY)


WRITE_USE_EVERY = 5  # seconds


async def record_use(auth: Authenticator, meter: UsageMeter) -> None:
    """Write keys' last use and token usage every few seconds, not once per request; every
    second while a budgeted key spends, so other instances see its spend soon."""
    waited = 0
    while True:
        await asyncio.sleep(1)
        waited += 1
        if waited < WRITE_USE_EVERY and not meter.hurried:
            continue
        waited = 0
        try:
            await auth.flush_usage()
            await meter.flush()
        except Exception:  # the next round tries again; serving must not stop for this
            log.exception("recording key use failed")


@contextlib.contextmanager
def on_hangup(handler: Callable[[], None]) -> Iterator[None]:
    """``handler`` runs on SIGHUP meanwhile (where the loop may take signals)."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, handler)
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


def recording_failure(
    lifespan: Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]],
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    """``lifespan``, keeping why it failed to start in ``app.state.startup_failure``: uvicorn
    only logs it, and ``serving.serve`` says it once and exits non-zero."""

    @contextlib.asynccontextmanager
    async def recorded(app: Starlette) -> AsyncIterator[None]:
        started = False
        try:
            async with lifespan(app):
                started = True
                yield
        except BaseException as exc:
            if not started:
                app.state.startup_failure = exc
            raise

    return recorded


@dataclass(frozen=True, slots=True)
class Catalog:
    """What the config and the agent files define, checked before anything is served."""

    agents: AgentRegistry
    routes: RouteTable
    tools: ToolRegistry


@dataclass(frozen=True, slots=True)
class Foundations:
    """What the services stand on, started in order: the store, the key checks, the limiter,
    the agents' versions and drafts, and the following of agent files."""

    catalog: Catalog
    store: Store
    auth: Authenticator
    limiter: Limiter
    versions: AgentVersions
    editor: AgentEditor
    live: LiveAgents


async def open_foundations(settings: Settings, catalog: Catalog, metrics: Metrics) -> Foundations:
    """Start them; if one cannot start, close what had (the store and the limiter)."""
    store = timed_store(open_store(settings.store, settings.base_dir), metrics)
    await store.start()
    auth = Authenticator(store, settings.server.admin_key)
    limiter = open_limiter(settings.redis)
    try:
        await check_exposure(auth, settings.server.host, settings.server.insecure_no_auth)
        await limiter.start()
        versions = AgentVersions(catalog.agents, store, catalog.routes, catalog.tools)
        await versions.record()
        editor = AgentEditor(versions)
        await editor.sync()
        live = LiveAgents(settings, versions, editor)
        await live.start()
    except BaseException:
        await limiter.close()
        await store.close()
        raise
    return Foundations(catalog, store, auth, limiter, versions, editor, live)


def build_knowledge(
    settings: Settings, store: Store, embeddings: EmbeddingService, metrics: Metrics
) -> Knowledge:
    """Files and vector stores: their store, embedders, ingester and searcher."""
    embedders = Embedders(settings.knowledge.embed_threads, embeddings.vectors, embeddings.serves)
    embeddings.builtin = embedders  # /v1/embeddings serves the built-in model too
    knowledge_store = KnowledgeStore(store.sql())
    ingester = Ingester(
        knowledge_store,
        embedders,
        metrics,
        settings.knowledge.ingest_concurrency,
        settings.knowledge.claim_seconds,
    )
    searcher = Searcher(knowledge_store, embedders)
    return Knowledge(
        knowledge_store, embedders, ingester, searcher, settings.knowledge, metrics, store
    )


def build_services(
    settings: Settings,
    base: Foundations,
    router: Router,
    mcp: McpHub,
    meter: UsageMeter,
    metrics: Metrics,
) -> Services:
    """What the routes use, built on the foundations."""
    store, agents, routes = base.store, base.catalog.agents, base.catalog.routes
    admission = Admission(base.limiter, settings.limits, meter, metrics, BudgetBook(store, meter))
    sessions = SessionService(store, settings.sessions.busy_wait)
    approvals = Approvals(
        store, settings.sessions.approval_expires, metrics.approvals, metrics.approval_wait
    )
    embeddings = EmbeddingService(agents, routes, router, admission)
    knowledge = build_knowledge(settings, store, embeddings, metrics)
    guardrails = Guardrails(settings.guardrails, router, routes, store)
    runs = RunService(
        base.versions, routes, router, mcp, sessions, admission, approvals, knowledge, guardrails
    )
    responses = ResponseService(store)
    sender = WebhookSender(store, settings.webhooks, metrics)
    background = BackgroundRuns(
        store,
        runs,
        settings.webhooks,
        sender.wake,
        settings.limits.max_background_runs,
        metrics.background_runs,
    )
    return Services(
        settings=settings,
        agents=agents,
        agent_calls=AgentCalls(runs),
        routes=routes,
        store=store,
        auth=base.auth,
        meter=meter,
        responses=responses,
        response_runs=ResponseRuns(responses, base.versions, runs, background),
        logins=ConsoleLogins(store, base.auth),
        visitors=Visitors(store, base.auth, base.limiter),
        versions=base.versions,
        editor=base.editor,
        runs=runs,
        background=background,
        webhooks=sender,
        embeddings=embeddings,
        knowledge=knowledge,
        metrics=metrics,
    )


@contextlib.asynccontextmanager
async def running_in_background(
    settings: Settings,
    base: Foundations,
    meter: UsageMeter,
    services: Services,
    readiness: Readiness,
) -> AsyncIterator[None]:
    """While serving: pruning the store, recording key use and usage, following the agent
    files (and SIGHUP), firing schedules, delivering webhooks; on the way out, background
    runs still going get what is left of the drain to end, and what they hold is written."""
    sender = services.webhooks
    pruner = asyncio.create_task(prune_forever(base.store, settings.sessions.ttl))
    delivering = asyncio.create_task(sender.run())
    scheduled = ScheduledRuns(services.response_runs, services.background)
    scheduler = Scheduler(base.store, lambda: list(base.versions.agents), scheduled.start)
    firing = asyncio.create_task(scheduler.run())
    takeover = RunTakeover(
        base.store,
        services.background,
        services.response_runs,
        base.auth,
        services.metrics.background_claims,
    )
    claiming = asyncio.create_task(takeover.claim_forever())
    recorder = asyncio.create_task(record_use(base.auth, meter))
    following = asyncio.create_task(base.live.run())
    ingesting = asyncio.create_task(services.knowledge.ingester.run())
    syncing = asyncio.create_task(
        AgentKnowledgeSync(
            services.knowledge,
            lambda: agents_knowledge(base.versions, settings.knowledge.embedding),
        ).run()
    )
    with on_hangup(base.live.hup):
        yield
    ingesting.cancel()
    syncing.cancel()
    following.cancel()
    firing.cancel()
    claiming.cancel()
    await services.background.close(readiness.drain_left(settings.server.drain_seconds))
    delivering.cancel()
    recorder.cancel()
    await base.auth.flush_usage()
    await meter.flush()
    pruner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ingesting  # its files under way are left for their claims to lapse
    services.knowledge.embedders.close()


def create_app(
    settings: Settings,
    *,
    providers: Mapping[str, Provider] | None = None,
    tracing: Tracing | None = None,
) -> Starlette:
    """The app for ``settings``; ``providers`` replaces the configured ones (tests, embedding);
    ``tracing`` is what the ``OTEL_*`` environment variables ask for unless given.

    Agent files, routes and provider sections are validated here, before anything is
    served, so a bad file fails at startup with the same messages as ``headend check``.
    """
    built = dict(providers) if providers is not None else builtin_provider_types().build(settings)
    routes = RouteTable(settings.models, built.keys(), source=settings.source)
    tools = builtin_tools(settings.mcp_servers.keys())
    agents = load_agents(settings.effective_agents_dir(), routes=routes, tools=tools)
    check_chat_targets(agents, built)
    check_webhooks(settings)
    check_embeddings(settings, routes, agents)
    check_judges(settings, routes)
    for note in skipped_notes(agents, settings.effective_agents_dir()):
        log.warning("%s", note)
    metrics = Metrics(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))  # set by ``--workers``
    tracing = tracing or tracing_from_env(os.environ)
    readiness = Readiness()
    access_log = (
        AccessLog(settings.server.log_format)
        if settings.server.access_log
        and logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)
        else None
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        mcp = McpHub(settings.mcp_servers)
        base = await open_foundations(settings, Catalog(agents, routes, tools), metrics)
        meter = UsageMeter(base.store)
        startup = ProviderStartup(built)
        async with upstream_client() as http:
            # Providers start in the background: the server answers (not ready) meanwhile.
            loading = asyncio.create_task(startup.run(Resources(http=http, metrics=metrics)))
            try:
                prices = {n: p.price for n, p in settings.providers.items() if p.price}
                router = Router(built, metrics=metrics, startup=startup, prices=prices)
                services = build_services(settings, base, router, mcp, meter, metrics)
                app.state.services = services
                readiness.startup = startup
                readiness.notes = base.live.notes
                readiness.pings = {"store": base.store.ping}
                if settings.redis:
                    readiness.pings["redis"] = base.limiter.ping
                log.info(
                    "serving %d agent(s) and %d model route(s)", len(agents), len(routes.names())
                )
                agent_tools = app.state.agent_tools = AgentToolServer()
                async with (
                    running_in_background(settings, base, meter, services, readiness),
                    agent_tools.running(),
                ):
                    yield
            finally:
                loading.cancel()  # a model still loading is left to the process's exit
                with contextlib.suppress(asyncio.CancelledError):
                    await loading
                await mcp.close()
                await base.limiter.close()
                await base.store.close()
                await startup.close()
                await asyncio.to_thread(tracing.close)  # sends the spans still buffered
                if access_log is not None:
                    access_log.flush()  # the drain's last lines

    app = HeadendApp(
        routes=ROUTES,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            Middleware(
                RequestContextMiddleware,
                observer=RequestObserver(metrics, access_log=access_log),
                tracing=tracing,
            ),
            Middleware(WidgetCors),
            Middleware(AuthMiddleware),
            Middleware(IdempotencyMiddleware),
        ],
        lifespan=recording_failure(lifespan),
    )
    app.state.startup_failure = None
    app.state.readiness = readiness  # the server's drain reaches it before the lifespan
    return app
