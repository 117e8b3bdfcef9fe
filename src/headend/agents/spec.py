"""Agent files: ``<id>.md`` with YAML front matter; the Markdown body is the system prompt."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from croniter import croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from headend.agents.knowledge_files import KnowledgeSpec, agent_home, knowledge_files
from headend.config import format_validation_error
from headend.errors import ConfigError
from headend.guardrails.rules import GuardrailSpec, ToolCallsCheck
from headend.providers.base import SAMPLING_FIELDS, SamplingParams
from headend.tools.approval_policy import RequireApproval
from headend.tools.registry import ToolRegistry, UnknownTool

MAX_ITERATIONS_LIMIT = 50
AGENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*(?:\r?\n|\Z)", re.S | re.M)

_RESERVED_HINT = "the id is the file name, the prompt is the body"

Route = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]


class ScheduleEntry(BaseModel):
    """A run the agent starts by itself: a background response to ``input``, at each time
    ``cron`` names (five fields: minute hour day-of-month month day-of-week, in UTC)."""

    model_config = ConfigDict(extra="forbid")
    cron: str
    input: Annotated[str, StringConstraints(min_length=1)]

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(
                "cron takes five fields: minute hour day-of-month month day-of-week (UTC)"
            )
        return value

    @property
    def key(self) -> str:
        """What names the entry across edits of the file: its time and its input."""
        return hashlib.sha256(f"{self.cron}\n{self.input}".encode()).hexdigest()[:16]

    def previous(self, now: float) -> float:
        """The last time at or before ``now`` it fires."""
        start = datetime.fromtimestamp(now, tz=UTC)
        if croniter.match(self.cron, start.replace(microsecond=0)) and start.second == 0:
            return start.replace(microsecond=0).timestamp()
        return float(croniter(self.cron, start).get_prev(float))

    def next(self, now: float) -> float:
        """The first time after ``now`` it fires."""
        return float(croniter(self.cron, datetime.fromtimestamp(now, tz=UTC)).get_next(float))


class AgentSpec(SamplingParams):
    """What an agent file declares. Sampling fields are the agent's defaults."""

    id: str
    description: str = ""
    model: Route | list[Route] = "local"
    pinned: list[str] = Field(default_factory=list)
    max_iterations: int = Field(25, ge=1, le=MAX_ITERATIONS_LIMIT)
    tools: list[str] = Field(default_factory=list)
    allow_hosts: list[str] = Field(default_factory=list)  # http_fetch may reach these anyway
    tool_timeouts: dict[str, PositiveFloat] = Field(default_factory=dict)  # seconds, by tool
    # runs at once; more wait in a FIFO queue (None: limits.agent_concurrency of headend.yaml)
    max_concurrency: int | None = Field(None, ge=1)
    # the first model call's tool_choice when the request has none (later calls: auto)
    tool_choice: Literal["auto", "none", "required"] | None = None
    parallel_tool_calls: bool | None = None  # None: the model's default
    # the answer's shape, for every request: {"type": "json_object"} or a json_schema
    response_format: dict[str, Any] | None = None
    schedule: list[ScheduleEntry] = Field(default_factory=list)  # runs it starts by itself
    # which tool calls stop to ask a person first (headend.tools.approval_policy)
    require_approval: RequireApproval = "never"
    # the documents its answers draw on, searched with file_search (agents.knowledge_files)
    knowledge: KnowledgeSpec | None = None
    # checks on its requests, answers and tools, after headend.yaml's (headend.guardrails)
    guardrails: list[GuardrailSpec] = Field(default_factory=list)
    system_prompt: str = ""
    source: str = Field("", exclude=True)

    @field_validator("model")
    @classmethod
    def _routes_not_empty(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("a fallback list needs at least one route")
        return value

    @field_validator("response_format")
    @classmethod
    def _json_formats(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        kind = value.get("type")
        if kind not in ("json_object", "json_schema"):
            raise ValueError("type must be json_object or json_schema")
        if kind == "json_schema":
            spec = value.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
                raise ValueError("json_schema needs a name and a schema (a JSON schema object)")
            spec.setdefault("name", "answer")
        return value

    @field_validator("pinned")
    @classmethod
    def _pinned_are_sampling_fields(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - SAMPLING_FIELDS)
        if unknown:
            raise ValueError(
                f"not sampling fields: {', '.join(unknown)} "
                f"(pinnable: {', '.join(sorted(SAMPLING_FIELDS))})"
            )
        return value

    @model_validator(mode="after")
    def _approval_names_are_its_tools(self) -> AgentSpec:
        rule = self.require_approval
        if isinstance(rule, str):
            return self
        listed = set(self.tools) | {name.split("/")[0] for name in self.tools}
        names = rule.always if rule.always is not None else rule.never or []
        unknown = [
            name for name in names if name not in listed and name.split("/")[0] not in listed
        ]
        if unknown:
            raise ValueError(
                f"require_approval names {', '.join(unknown)}: not among this agent's tools "
                f"({', '.join(self.tools) or 'none'})"
            )
        return self

    @model_validator(mode="after")
    def _limited_tools_are_its_tools(self) -> AgentSpec:
        listed = set(self.tools) | {name.split("/")[0] for name in self.tools}
        for check in self.guardrails:
            if isinstance(check, ToolCallsCheck):
                unknown = [
                    n for n in check.max if n not in listed and n.split("/")[0] not in listed
                ]
                if unknown:
                    raise ValueError(
                        f"guardrails: tool_calls limits {', '.join(unknown)}: not among this "
                        f"agent's tools ({', '.join(self.tools) or 'none'})"
                    )
        return self

    def routes(self) -> list[str]:
        return [self.model] if isinstance(self.model, str) else list(self.model)

    def sampling(self) -> SamplingParams:
        return SamplingParams.model_validate(self.model_dump(include=set(SAMPLING_FIELDS)))


def split_front_matter(text: str) -> tuple[str | None, str]:
    """(front matter, body); front matter is None when the file has none."""
    match = _FRONT_MATTER.match(text.lstrip("\ufeff"))
    if match is None:
        return None, text
    return match.group(1), text[match.end() :]


def compose_agent_text(front_matter: dict[str, Any], prompt: str) -> str:
    """The text of an agent file with this front matter and prompt."""
    keys = yaml.safe_dump(front_matter, sort_keys=False, allow_unicode=True) if front_matter else ""
    return f"---\n{keys}---\n{prompt.strip()}\n"


def read_agent(path: Path) -> str:
    """An agent file's text; ConfigError names the file."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from exc


def agent_id_of(path: Path) -> str:
    """The id an agent file names (its name without ``.md``), if it is a valid one."""
    if not AGENT_ID.match(path.stem):
        raise ConfigError(
            [f"{path}: the file name must be the agent id: letters, digits, '.', '_' or '-'"]
        )
    return path.stem


def parse_agent(path: Path, tools: ToolRegistry) -> AgentSpec:
    """Read and validate one agent file; ConfigError lines name the file and the key."""
    return parse_agent_text(agent_id_of(path), read_agent(path), str(path), tools)


def parse_agent_text(agent_id: str, text: str, source: str, tools: ToolRegistry) -> AgentSpec:
    """Validate an agent's definition (what its file holds); ConfigError lines begin with
    ``source`` and name the key."""
    front, body = split_front_matter(text)
    data: Any = {}
    if front is not None:
        try:
            data = yaml.safe_load(front) or {}
        except yaml.YAMLError as exc:
            raise ConfigError([f"{source}: invalid YAML front matter: {exc}"]) from exc
        if not isinstance(data, dict):
            raise ConfigError([f"{source}: the front matter must be a mapping of keys"])
    for reserved in ("id", "system_prompt", "source"):
        if reserved in data:
            raise ConfigError([f"{source}: {reserved}: unknown key ({_RESERVED_HINT})"])
    try:
        spec = AgentSpec.model_validate(
            {**data, "id": agent_id, "system_prompt": body.strip(), "source": source}
        )
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from exc
    problems = []
    for name in spec.tools:
        try:
            tools.check(name)
        except UnknownTool as exc:
            problems.append(f"{source}: tools: {exc}")
    if spec.knowledge is not None:
        _files, unusable = knowledge_files(spec.knowledge, agent_home(source, None))
        problems += [f"{source}: {problem}" for problem in unusable]
    if problems:
        raise ConfigError(problems)
    return spec
