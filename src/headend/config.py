"""headend.yaml: loading, ``${ENV}`` interpolation and validation.

Provider sections are checked here only for their ``type``; each provider type validates the
rest of its section with its own model (see ``headend.providers.registry``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from headend.errors import ConfigError
from headend.guardrails.rules import GuardrailSpec
from headend.pricing import Price
from headend.proxies import ProxySetting

CONFIG_ENV = "HEADEND_CONFIG"
ADMIN_KEY_ENV = "HEADEND_ADMIN_KEY"
ADMIN_KEY_FILE_ENV = "HEADEND_ADMIN_KEY_FILE"  # a file holding it (Docker and Kubernetes secrets)
DEFAULT_CONFIG_NAME = "headend.yaml"
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    # Lax types on purpose: ${VAR} interpolation yields strings, so "8080" must become 8080.
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1024)
    keepalive_seconds: float = Field(15.0, gt=0)  # SSE comment lines while a stream is quiet
    # The way in (see headend.server.ingress): limits on what a client may send, and how slowly.
    max_header_bytes: int = Field(65_536, ge=1024)  # request line and headers together
    max_headers: int = Field(100, ge=8)
    header_timeout: float = Field(10.0, gt=0)  # seconds from a request's first byte to its head
    body_timeout: float = Field(60.0, gt=0)  # seconds from the head to the body's last byte
    idle_timeout: float = Field(10.0, gt=0)  # seconds a connection may wait between requests
    websocket_seconds: float = Field(3600.0, gt=0)  # a Responses WebSocket's life, as OpenAI's
    admin_key: str | None = Field(None, repr=False)  # also from $HEADEND_ADMIN_KEY
    insecure_no_auth: bool = False  # serve without keys on a non-loopback address
    drain_seconds: float = Field(30.0, ge=0)  # on SIGTERM, how long running requests may finish
    log_format: Literal["text", "json"] = "text"  # json: every line one JSON object
    access_log: bool = True  # one line per request (headend's own; uvicorn's is off)
    workers: int = Field(1, ge=1, le=64)  # processes serving one port (see headend.server.workers)

    @field_validator("drain_seconds", "websocket_seconds", mode="before")
    @classmethod
    def _drain(cls, value: object) -> float:
        return parse_duration(value)


class ProviderSection(BaseModel):
    """A provider's section: a ``type`` plus whatever that type accepts."""

    model_config = ConfigDict(extra="allow")
    type: str
    price: Price | None = None  # per million tokens of every model it serves; None: 0

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RouteSection(_Strict):
    """A name under ``models:`` with more than its routes: ``{route: …, price: …}``."""

    route: str | list[str]
    price: Price | None = None  # per million tokens, over its provider's price


class McpServerSettings(_Strict):
    """An MCP server: a command speaking stdio, or a streamable HTTP endpoint."""

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict, repr=False)
    cwd: Path | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    timeout: float = Field(60.0, gt=0)  # seconds for one tool call
    proxy: ProxySetting = None  # http://[user:password@]host:port, whatever HTTPS_PROXY says

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSettings:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either 'command' (stdio) or 'url' (streamable HTTP)")
        return self


WEBHOOK_EVENTS = (
    "response.completed",
    "response.failed",
    "response.cancelled",
    "response.incomplete",
)
_WEBHOOK_SECRET = re.compile(r"^whsec_[A-Za-z0-9+/]{32,}={0,2}$")


class WebhookSettings(_Strict):
    """An endpoint told when background responses end, as OpenAI's webhooks tell, signed per
    the Standard Webhooks spec and delivered at least once (see ``headend.webhooks``)."""

    url: str
    secret: str = Field(repr=False)  # whsec_ and base64, as Standard Webhooks' libraries take
    events: list[str] | None = None  # None: every event
    allow_private: bool = False  # its host may be loopback or private (an operator's choice)
    max_attempts: int = Field(8, ge=1, le=20)
    backoff: float = Field(5.0, gt=0)  # seconds before the first retry; 4x longer each time
    timeout: float = Field(10.0, gt=0)  # seconds for one delivery

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("a webhook URL starts with https:// or http://")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        # empty: a ${VAR} left unset by a command that sends nothing (see load_settings)
        if value and not _WEBHOOK_SECRET.match(value):
            raise ValueError("a webhook secret is whsec_ followed by base64 (24 bytes or more)")
        return value

    @field_validator("events")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        unknown = sorted(set(value or ()) - set(WEBHOOK_EVENTS))
        if unknown:
            raise ValueError(f"unknown events {unknown}; known: {', '.join(WEBHOOK_EVENTS)}")
        return value

    @field_validator("backoff", "timeout", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration(value)

    def wants(self, event: str) -> bool:
        return self.events is None or event in self.events


def check_webhooks(settings: Settings) -> None:
    """What ``serve`` refuses of the webhooks: an endpoint without a secret to sign with
    (only a command that sends nothing reads an unset ``${VAR}`` as empty)."""
    empty = [f"webhooks[{n}].secret" for n, hook in enumerate(settings.webhooks) if not hook.secret]
    if empty:
        raise ConfigError([f"{settings.source}: {where}: empty" for where in empty])


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"12h"``, ``"30d"`` or ``"2w"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    if match is None:
        raise ValueError("a duration is a number of seconds or like 90s, 15m, 12h, 30d, 2w")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class SessionSettings(_Strict):
    busy_wait: float = Field(30.0, ge=0)  # seconds a turn waits for the session's previous one
    ttl: float | None = None  # sessions idle longer than this are deleted; None keeps them
    # how long a tool call waits for a person's approval (then the model is told it expired)
    approval_expires: float = Field(86_400.0, gt=0)

    @field_validator("ttl", "approval_expires", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float | None:
        return None if value is None else parse_duration(value)


class LimitSettings(_Strict):
    """Concurrency: requests running at once, the rest waiting in FIFO queues."""

    concurrency: int | None = Field(None, ge=1)  # every request together; None: no limit
    agent_concurrency: int = Field(4, ge=1)  # per agent, unless its file says max_concurrency
    model_concurrency: int | None = Field(None, ge=1)  # per model route; None: no limit
    max_queue: int = Field(100, ge=0)  # requests waiting per pool; more are refused (429)
    queue_timeout: float = Field(30.0, gt=0)  # seconds a request waits before a 429
    # a key's background responses queued or running at once; more are refused (429)
    max_background_runs: int = Field(100, ge=1)

    @field_validator("queue_timeout", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration(value)


class ReloadSettings(_Strict):
    """Live changes (see ``headend.agents.live``)."""

    watch: bool = True  # follow the agents directory and headend.yaml's models: (else SIGHUP)


class KnowledgeSettings(_Strict):
    """Files, vector stores and their ingestion (see ``headend.knowledge``)."""

    # The embedding model of new vector stores: "builtin" (all-MiniLM-L6-v2, in-process, no
    # download) or a model route that serves /v1/embeddings.
    embedding: str = "builtin"
    max_file_bytes: int = Field(512 * 1024 * 1024, ge=1024)  # one upload; larger get 413
    max_files_per_key: int | None = Field(10_000, ge=1)  # None: no limit
    max_bytes_per_key: int | None = Field(10 * 1024 * 1024 * 1024, ge=1024)  # None: no limit
    ingest_concurrency: int = Field(1, ge=1, le=16)  # files ingested at once per instance
    embed_threads: int = Field(2, ge=1, le=64)  # the built-in model's threads
    # seconds an instance's claim on a file it ingests holds unrenewed: how soon another
    # instance (or the same one restarted) takes up a file whose instance died
    claim_seconds: float = Field(30.0, ge=1, le=3600)


def _default_providers() -> dict[str, ProviderSection]:
    return {"local": ProviderSection(type="llama_cpp")}


class Settings(_Strict):
    server: ServerSettings = Field(default_factory=ServerSettings)
    agents_dir: Path | None = None
    providers: dict[str, ProviderSection] = Field(default_factory=_default_providers)
    models: dict[str, str | list[str] | RouteSection] = Field(default_factory=dict)
    mcp_servers: dict[str, McpServerSettings] = Field(default_factory=dict)
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    store: str = "sqlite:///headend.db"  # relative to the config file's directory
    sessions: SessionSettings = Field(default_factory=lambda: SessionSettings())
    limits: LimitSettings = Field(default_factory=lambda: LimitSettings())
    redis: str | None = Field(None, repr=False)  # redis://…: limits shared by instances
    reload: ReloadSettings = Field(default_factory=lambda: ReloadSettings())
    knowledge: KnowledgeSettings = Field(default_factory=lambda: KnowledgeSettings())
    # checks on every agent's and model route's requests and answers (headend.guardrails)
    guardrails: list[GuardrailSpec] = Field(default_factory=list)
    # Where the settings came from, for messages and for resolving relative paths.
    source: str = Field("defaults", exclude=True)
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    def resolve(self, path: Path) -> Path:
        """A path from the config file, relative to the file's own directory."""
        path = path.expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def effective_agents_dir(self) -> Path:
        return self.resolve(self.agents_dir) if self.agents_dir else self.base_dir / "agents"


# Sections only serving reads: what their ${VAR}s hold is needed by nothing else.
CALLED_SECTIONS = ("providers.", "mcp_servers.", "webhooks[")


def interpolate(value: Any, env: Mapping[str, str], where: str, problems: list[str]) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of a YAML tree."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(f"{where}: environment variable {name} is not set")
            return ""

        return _ENV_REF.sub(substitute, value)
    if isinstance(value, dict):
        return {
            k: interpolate(v, env, f"{where}.{k}" if where else str(k), problems)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [interpolate(v, env, f"{where}[{i}]", problems) for i, v in enumerate(value)]
    return value


def format_validation_error(source: str, error: ValidationError, prefix: str = "") -> list[str]:
    """One line per pydantic problem: ``file: key.path: message``."""
    lines = []
    for item in error.errors():
        key = prefix + ".".join(str(part) for part in item["loc"])
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{source}: {key or '(top level)'}: {message}")
    return lines


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: invalid YAML: {exc}"]) from exc


def find_config(explicit: Path | None, env: Mapping[str, str]) -> Path | None:
    if explicit is not None:
        return explicit
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    candidate = Path.cwd() / DEFAULT_CONFIG_NAME
    return candidate if candidate.is_file() else None


def load_settings(
    path: Path | None = None, env: Mapping[str, str] | None = None, *, secrets: bool = True
) -> Settings:
    """Read, interpolate and validate headend.yaml; defaults when there is none.

    ``secrets=False`` is for commands that call no provider and no MCP server (keys, usage,
    sessions, audit): a ``${VAR}`` of those sections that is not set reads as empty instead
    of stopping them, so an operator's shell needs the store's settings, not the upstreams'
    keys."""
    env = os.environ if env is None else env
    settings = _load(find_config(path, env), env, secrets)
    admin_key = env.get(ADMIN_KEY_ENV) or _read_secret(env.get(ADMIN_KEY_FILE_ENV))
    if admin_key and not settings.server.admin_key:
        server = settings.server.model_copy(update={"admin_key": admin_key})
        settings = settings.model_copy(update={"server": server})
    return settings


def _read_secret(path: str | None) -> str | None:
    if not path:
        return None
    try:
        secret = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError([f"{ADMIN_KEY_FILE_ENV}: cannot read {path}: {exc.strerror}"]) from exc
    if not secret:
        raise ConfigError([f"{ADMIN_KEY_FILE_ENV}: {path} is empty"])
    return secret


def _load(path: Path | None, env: Mapping[str, str], secrets: bool = True) -> Settings:
    if path is None:
        return Settings()
    raw = read_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of sections"])
    problems: list[str] = []
    data = interpolate(raw, env, "", problems)
    if not secrets:
        problems = [p for p in problems if not p.startswith(CALLED_SECTIONS)]
    if problems:
        raise ConfigError([f"{path}: {problem}" for problem in problems])
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(str(path), exc)) from exc
    return settings.model_copy(update={"source": str(path), "base_dir": path.resolve().parent})
