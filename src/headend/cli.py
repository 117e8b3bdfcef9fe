"""The ``headend`` command: serve, check the configuration, list agents, and manage what the
store holds (sessions, keys, usage, the audit)."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from headend import __version__
from headend.agents.knowledge_files import check_embeddings
from headend.agents.registry import (
    AgentRegistry,
    check_chat_targets,
    check_judges,
    load_agents,
    skipped_notes,
)
from headend.agents.spec import AgentSpec, parse_agent_text
from headend.config import Settings, check_webhooks, load_settings
from headend.errors import ConfigError, HeadendError
from headend.limits.budget import PERIODS, money
from headend.observability.audit_log import ACTIONS, cli_actor
from headend.providers.model_routes import RouteTable
from headend.providers.registry import builtin_provider_types
from headend.store.base import KeyRecord, Store
from headend.tools.registry import builtin_tools


def _settings(args: argparse.Namespace, *, secrets: bool = True) -> Settings:
    """The settings a command runs with; ``secrets=False`` for those that call no provider
    (see ``load_settings``)."""
    settings = load_settings(args.config, secrets=secrets)
    server = settings.server.model_copy(
        update={
            key: value
            for key, value in (
                ("host", getattr(args, "host", None)),
                ("port", getattr(args, "port", None)),
                ("workers", getattr(args, "workers", None)),
            )
            if value is not None
        }
    )
    if getattr(args, "insecure_no_auth", False):
        server = server.model_copy(update={"insecure_no_auth": True})
    if getattr(args, "log_format", None) is not None:
        server = server.model_copy(update={"log_format": args.log_format})
    if getattr(args, "access_log", None) is False:
        server = server.model_copy(update={"access_log": False})
    update: dict[str, object] = {"server": server}
    if args.agents is not None:
        update["agents_dir"] = args.agents.resolve()
    return settings.model_copy(update=update)


def _agents(settings: Settings) -> AgentRegistry:
    providers = builtin_provider_types().validate(settings)
    routes = RouteTable(settings.models, providers.keys(), source=settings.source)
    tools = builtin_tools(settings.mcp_servers.keys())
    return load_agents(settings.effective_agents_dir(), routes=routes, tools=tools)


def print_table(rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell; the last one is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())


def cmd_serve(args: argparse.Namespace) -> int:
    from headend.app import create_app
    from headend.observability.logs import configure_logging
    from headend.observability.tracing import TracingOff
    from headend.server.serving import serve
    from headend.server.workers import Supervisor, check_workers, preflight

    # A hang-up reads the agents again once serving (headend.agents.live); until then, and
    # in the supervisor until it passes one on, it must not end the server.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    settings = _settings(args)
    configure_logging(settings.server.log_format, args.log_level)
    if settings.server.workers > 1:
        check_workers(settings)
        create_app(settings, tracing=TracingOff())  # agents, routes, providers: checked once
        preflight(settings)
        return Supervisor(settings, args.log_level, create_app).run()
    serve(create_app(settings), settings, log_level=args.log_level)
    return 0


def _model_of(spec: AgentSpec) -> str:
    return spec.model if isinstance(spec.model, str) else ", ".join(spec.model)


def cmd_agents(args: argparse.Namespace) -> int:
    """The agents of the files, then those created through the API (from the store): what
    the server would offer, and where each is defined."""
    settings = _settings(args, secrets=False)
    registry = _agents(settings)
    rows = [("ID", "ORIGIN", "MODEL", "DESCRIPTION")]
    for agent in registry:
        rows.append((agent.id, "file", _model_of(agent.spec), agent.spec.description))

    async def stored(store: Store) -> int:
        tools = builtin_tools(settings.mcp_servers.keys())
        for record in await store.stored_agents():
            if registry.get(record.id) is not None:
                continue  # its file is served, not the version stored
            version = (
                await store.agent_version(record.id, record.published)
                if record.published is not None
                else None
            )
            text = version.content if version is not None else record.draft or ""
            origin = f"api v{record.published}" if version is not None else "api (draft only)"
            try:
                spec = parse_agent_text(record.id, text, record.id, tools)
            except ConfigError:
                rows.append((record.id, origin, "?", "(does not validate)"))
                continue
            rows.append((record.id, origin, _model_of(spec), spec.description))
        return 0

    _with_store(args, stored, settings)
    print_table(rows)
    if registry.directory is None:
        print("(packaged agents: the agents directory holds no agent files)", file=sys.stderr)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """What ``serve`` would refuse at start-up, found without serving: the providers built
    (their model files found), the agents loaded and routed to providers that chat."""
    settings = _settings(args)
    built = builtin_provider_types().build(settings)
    registry = _agents(settings)
    check_chat_targets(registry, built)
    check_webhooks(settings)
    check_embeddings(settings, RouteTable(settings.models, built.keys()), registry)
    check_judges(settings, RouteTable(settings.models, built.keys()))
    where = registry.directory or "packaged agents"
    print(
        f"ok: {settings.source}; {len(registry)} agent(s) from {where}; "
        f"providers: {', '.join(sorted(settings.providers))}; "
        f"model routes: {', '.join(sorted(settings.models)) or 'none'}"
    )
    for note in skipped_notes(registry, settings.effective_agents_dir()):
        print(f"warning: {note}", file=sys.stderr)
    return 0


def cmd_sessions_prune(args: argparse.Namespace) -> int:
    import asyncio
    import time

    from headend.config import parse_duration
    from headend.store import open_store

    settings = _settings(args, secrets=False)
    ttl = parse_duration(args.older_than) if args.older_than else settings.sessions.ttl
    if ttl is None:
        print("error: no sessions.ttl in the config; give --older-than", file=sys.stderr)
        return 1

    async def prune() -> int:
        store = open_store(settings.store, settings.base_dir)
        await store.start()
        try:
            return await store.prune(time.time() - ttl)
        finally:
            await store.close()

    print(f"deleted {asyncio.run(prune())} session(s) idle for more than {ttl:g} s")
    return 0


def _with_store(
    args: argparse.Namespace,
    work: Callable[[Store], Awaitable[int]],
    settings: Settings | None = None,
) -> int:
    import asyncio

    from headend.store import open_store

    settings = settings or _settings(args, secrets=False)

    async def run() -> int:
        store = open_store(settings.store, settings.base_dir)
        await store.start()
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def cmd_keys_create(args: argparse.Namespace) -> int:
    from headend.access.keys import (
        KeyLimits,
        Publishable,
        check_agents,
        create_key,
        known_names,
        read_guardrails,
        tool_grant,
    )
    from headend.config import parse_duration, read_yaml
    from headend.limits.budget import Budget

    settings = _settings(args, secrets=False)

    async def work(store: Store) -> int:
        expires = parse_duration(args.expires) if args.expires else None
        budget = Budget.of(args.budget, args.budget_period)
        limits = KeyLimits(args.rpm, args.tpm, args.max_concurrency, budget)
        registry = builtin_tools(settings.mcp_servers.keys())
        grant = tool_grant(args.tool, args.no_tools, args.read_only, registry)
        guardrails = read_guardrails(read_yaml(Path(args.guardrails))) if args.guardrails else []
        if args.agent:
            files = (agent.id for agent in _agents(settings))
            known = await known_names(store, files, settings.models)
            check_agents(args.agent, known, args.scope or [])
        if (args.origin or args.visitor_rpm) and not args.publishable:
            raise ValueError("--origin and --visitor-rpm are for --publishable keys")
        publishable = Publishable.of(args.origin, args.visitor_rpm) if args.publishable else None
        issued = await create_key(
            store,
            args.name,
            args.scope or [],
            args.agent,
            expires,
            limits,
            grant,
            publishable,
            by=cli_actor(),
            require_approval=args.require_approval,
            guardrails=guardrails,
        )
        print(f"{issued.record.id}  {', '.join(issued.record.scopes)}")
        print(issued.secret)
        if issued.identity_secret is not None:
            print(f"identity secret (for data-user-hash): {issued.identity_secret}")
            print("(publishable: put the pk-he- key in the widget tag)", file=sys.stderr)
        else:
            print("(the secret is shown once; only its hash is stored)", file=sys.stderr)
        return 0

    try:
        return _with_store(args, work, settings)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def cmd_keys_list(args: argparse.Namespace) -> int:
    import time

    async def work(store: Store) -> int:
        now = time.time()
        rows = [
            (
                "ID",
                "PREFIX",
                "NAME",
                "SCOPES",
                "AGENTS",
                "TOOLS",
                "LIMITS",
                "SITES",
                "LAST USED",
                "STATUS",
            )
        ]
        for key in await store.list_keys():
            used = (
                time.strftime("%Y-%m-%d %H:%M", time.gmtime(key.last_used_at))
                if (key.last_used_at)
                else "never"
            )
            status = "active" if key.active(now) else ("revoked" if key.revoked_at else "expired")
            rows.append(
                (
                    key.id,
                    key.prefix + "…",
                    key.name,
                    ",".join(key.scopes),
                    ",".join(key.agents) if key.agents else "*",
                    describe_tools(key),
                    describe_limits(key),
                    ",".join(key.origins) if key.origins else "-",
                    used,
                    status,
                )
            )
        print_table(rows)
        return 0

    return _with_store(args, work)


def describe_tools(key: KeyRecord) -> str:
    from headend.tools.policy import ToolPolicy

    shown = ToolPolicy.of(key.tools).describe()
    tools = ",".join(shown) if isinstance(shown, list) else shown
    return f"{tools}+approval" if key.require_approval else tools  # writes ask a person


def describe_limits(key: KeyRecord) -> str:
    parts = [
        f"{label} {value}"
        for label, value in (
            ("rpm", key.rpm),
            ("tpm", key.tpm),
            ("at once", key.max_concurrency),
            ("visitor rpm", key.visitor_rpm),
        )
        if value
    ]
    if key.budget is not None:
        parts.append(f"budget {money(key.budget)}/{key.budget_period}")
    return ", ".join(parts) or "-"


def cmd_usage(args: argparse.Namespace) -> int:
    import time

    from headend.runs.usage import utc_day

    async def work(store: Store) -> int:
        since = utc_day(time.time() - (args.days - 1) * 86400)
        names = {key.id: key.name for key in await store.list_keys()}
        rows: list[tuple[str, ...]] = [
            (
                "DAY",
                "KEY",
                "NAME",
                "AGENT/MODEL",
                "REQUESTS",
                "PROMPT",
                "COMPLETION",
                "TOTAL",
                "COST",
            )
        ]
        totals = [0, 0, 0]
        cost = 0.0
        for row in await store.usage(since, args.key):
            rows.append(
                (
                    row.day,
                    row.key_id or "(no key)",
                    names.get(row.key_id or "", "-"),
                    row.model,
                    str(row.requests),
                    str(row.prompt_tokens),
                    str(row.completion_tokens),
                    str(row.prompt_tokens + row.completion_tokens),
                    money(row.cost),
                )
            )
            for i, value in enumerate((row.requests, row.prompt_tokens, row.completion_tokens)):
                totals[i] += value
            cost += row.cost
        total = (*map(str, totals), str(totals[1] + totals[2]), money(cost))
        rows.append(("total", "", "", "", *total))
        print_table(rows)
        return 0

    return _with_store(args, work)


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from headend.access.keys import revoke_key

    async def work(store: Store) -> int:
        if not await revoke_key(store, args.key_id, by=cli_actor()):
            print(f"error: no active key {args.key_id}", file=sys.stderr)
            return 1
        print(f"revoked {args.key_id}")
        return 0

    return _with_store(args, work)


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from headend.access.keys import rotate_key

    async def work(store: Store) -> int:
        secret = await rotate_key(store, args.key_id, by=cli_actor())
        if secret is None:
            print(f"error: no active key {args.key_id}", file=sys.stderr)
            return 1
        print(secret)
        return 0

    return _with_store(args, work)


def cmd_audit(args: argparse.Namespace) -> int:
    import json
    import time

    from headend.observability.audit_log import known, unknown
    from headend.store.base import AuditQuery

    if args.action is not None and not known(args.action):
        print(f"error: {unknown(args.action)}", file=sys.stderr)
        return 1

    async def work(store: Store) -> int:
        names = {key.id: key.name for key in await store.list_keys()}
        query = AuditQuery(args.limit, args.before, args.target, args.action, args.actor)
        rows = [("ID", "AT (UTC)", "ACTOR", "ACTION", "TARGET", "DETAIL")]
        for entry in await store.audit(query):
            actor = entry.actor
            if actor in names:
                actor = f"{actor} ({names[actor]})"
            rows.append(
                (
                    str(entry.id),
                    time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(entry.at)),
                    actor,
                    entry.action,
                    entry.target,
                    json.dumps(entry.detail, separators=(",", ":")) if entry.detail else "-",
                )
            )
        print_table(rows)
        return 0

    return _with_store(args, work)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headend",
        description="AI agents and plain models behind the APIs every LLM client speaks.",
        epilog="'headend COMMAND --help' tells more of each command.",
    )
    parser.add_argument("--version", action="version", version=f"headend {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument(
            "--config", type=Path, help="headend.yaml (default: $HEADEND_CONFIG or ./headend.yaml)"
        )
        sub.add_argument("--agents", type=Path, help="the agents directory")
        return sub

    serve = add("serve", "serve the API")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080)")
    serve.add_argument(
        "--workers",
        type=int,
        help="processes serving the port (default 1); more than one needs redis: in the config",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="the least important lines logged (default info)",
    )
    serve.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="text (default) or json: one JSON object per line, uvicorn's lines included",
    )
    serve.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        default=None,
        help="no line per request",
    )
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve without API keys on a non-loopback address",
    )
    serve.set_defaults(handler=cmd_serve)
    add("agents", "list the agents with their model and description").set_defaults(
        handler=cmd_agents
    )
    add("check", "validate headend.yaml and the agent files").set_defaults(handler=cmd_check)
    sessions = commands.add_parser("sessions", help="manage stored sessions")
    session_commands = sessions.add_subparsers(dest="sessions_command", required=True)
    prune = session_commands.add_parser("prune", help="delete sessions idle past sessions.ttl")
    prune.add_argument("--config", type=Path, help="headend.yaml")
    prune.add_argument("--agents", type=Path, help=argparse.SUPPRESS)
    prune.add_argument("--older-than", help="a duration (30d, 12h, ...) instead of sessions.ttl")
    prune.set_defaults(handler=cmd_sessions_prune)

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)

    def key_command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = key_commands.add_parser(name, help=help_text)
        sub.add_argument("--config", type=Path, help="headend.yaml")
        sub.add_argument("--agents", type=Path, help=argparse.SUPPRESS)
        return sub

    create = key_command("create", "issue a key; prints its secret once")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--scope",
        action="append",
        help="chat (or chat:write), models:read, sessions:read, metrics, agents:write, "
        "admin; repeat (default: chat and models:read)",
    )
    create.add_argument("--agent", action="append", help="limit the key to this agent; repeat")
    create.add_argument("--expires", help="a duration: 30d, 12h")
    create.add_argument("--rpm", type=_positive, help="requests per minute")
    create.add_argument("--tpm", type=_positive, help="tokens per minute (prompt + completion)")
    create.add_argument(
        "--max-concurrency", type=_positive, help="requests running at once (more wait in line)"
    )
    create.add_argument(
        "--budget",
        type=_amount,
        help="what its requests may cost per budget period, in the prices' currency",
    )
    create.add_argument(
        "--budget-period",
        choices=list(PERIODS),
        help="the UTC day, week (from Monday) or month --budget is for (default month)",
    )
    tools = create.add_mutually_exclusive_group()
    tools.add_argument(
        "--tool",
        action="append",
        help="an agent tool its runs may use (as agent files name it); repeat",
    )
    tools.add_argument("--no-tools", action="store_true", help="its runs may use no agent tool")
    tools.add_argument(
        "--read-only", action="store_true", help="its runs may use only tools that read"
    )
    create.add_argument(
        "--require-approval",
        action="store_true",
        help="its runs' tool calls that do more than read wait for a person's approval",
    )
    create.add_argument(
        "--guardrails",
        metavar="FILE",
        help="a YAML file holding a guardrails list (as in an agent file): checks on every "
        "run the key makes",
    )
    create.add_argument(
        "--publishable",
        action="store_true",
        help="a pk-he- key for the chat widget: chat only, on its --agent(s), from its --origin(s)",
    )
    create.add_argument(
        "--origin", action="append", help="a site a publishable key works from; repeat"
    )
    create.add_argument(
        "--visitor-rpm",
        type=_positive,
        help="a publishable key's requests per minute per visitor and per address (default 10)",
    )
    create.set_defaults(handler=cmd_keys_create)
    key_command("list", "list keys (never their secrets)").set_defaults(handler=cmd_keys_list)
    for name, handler in (("revoke", cmd_keys_revoke), ("rotate", cmd_keys_rotate)):
        sub = key_command(name, f"{name} a key")
        sub.add_argument("key_id")
        sub.set_defaults(handler=handler)
    usage = commands.add_parser("usage", help="tokens used per key, agent and day")
    usage.add_argument("--config", type=Path, help="headend.yaml")
    usage.add_argument("--agents", type=Path, help=argparse.SUPPRESS)
    usage.add_argument("--days", type=_positive, default=7, help="the last N days (default 7)")
    usage.add_argument("--key", help="only this key id")
    usage.set_defaults(handler=cmd_usage)
    audit = commands.add_parser(
        "audit",
        help="changes to keys and agents: who, what, when (newest first)",
        epilog="actions:\n" + "\n".join(f"  {name:14} {text}" for name, text in ACTIONS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    audit.add_argument("--config", type=Path, help="headend.yaml")
    audit.add_argument("--agents", type=Path, help=argparse.SUPPRESS)
    audit.add_argument("--limit", type=_positive, default=50, help="at most N entries (50)")
    audit.add_argument("--before", type=_positive, help="entries older than this id")
    audit.add_argument("--target", help="only changes to this key or agent id")
    audit.add_argument("--action", help="only this action (key.create…) or family (key, agent)")
    audit.add_argument("--actor", help="only changes by this key id, cli:<user>, or file")
    audit.set_defaults(handler=cmd_audit)
    return parser


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return int(text)


def _amount(text: str) -> float:
    try:
        amount = float(text)
    except ValueError:
        amount = 0.0
    if not 0 < amount < float("inf"):
        raise argparse.ArgumentTypeError(f"not a positive amount: {text!r}")
    return amount


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    except HeadendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
