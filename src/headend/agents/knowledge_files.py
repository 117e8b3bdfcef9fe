"""An agent file's ``knowledge:``: the documents its answers may draw on.

    knowledge:                       # or a plain list: the files
      files: [docs/, "guides/*.md", /srv/handbook.pdf]   # relative to the agent file
      vector_store_ids: [vs_…]       # stores made through the API, searched too
      max_num_results: 5
      embedding: builtin             # or a model route that serves /v1/embeddings

Files, folders (every file beneath, hidden ones left out) and globs (``**`` included) are
indexed into the agent's own vector store and kept in step with the files: added, changed
and removed ones follow within seconds (``knowledge.agent_sync``). ``headend check`` and the
server refuse a path that does not exist and a file that cannot be read or is of a kind
headend does not read, naming the file.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from headend.config import Settings
from headend.errors import ConfigError
from headend.knowledge.embedder import BUILTIN, BUILTIN_MODEL
from headend.knowledge.readers import HTML, READ_AS_DOCUMENTS, TEXT
from headend.providers.model_routes import RouteTable

if TYPE_CHECKING:
    from headend.agents.registry import Agent

GLOB = frozenset("*?[")
READABLE = TEXT | HTML | READ_AS_DOCUMENTS


class KnowledgeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    files: list[str] = Field(default_factory=list)
    vector_store_ids: list[str] = Field(default_factory=list)
    max_num_results: int = Field(5, ge=1, le=50)
    # the model its files' vectors come from: "builtin", or a model route that embeds
    # (None: knowledge.embedding of headend.yaml)
    embedding: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _list_is_files(cls, value: Any) -> Any:
        return {"files": value} if isinstance(value, list) else value


def agent_home(source: str, agents_dir: Path | None) -> Path:
    """Where an agent's relative knowledge paths start: its file's folder (an agent made
    through the API: the agents directory)."""
    path = Path(source)
    if source and path.suffix == ".md":
        return path.resolve().parent
    return (agents_dir or Path.cwd()).resolve()


def knowledge_files(spec: KnowledgeSpec, home: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """The files ``spec`` names, each with the name it is known by (its path relative to
    ``home``, or absolute), and the problems found (a missing path, an unreadable file)."""
    found: dict[str, Path] = {}
    problems: list[str] = []
    for entry in spec.files:
        given = Path(entry).expanduser()
        where = given if given.is_absolute() else home / given
        if GLOB & set(entry):
            matches = [Path(p) for p in sorted(glob.glob(str(where), recursive=True))]
            paths = [p for p in matches if p.is_file()]
        elif where.is_dir():
            paths = sorted(
                p
                for p in where.rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(where).parts)
            )
        elif where.is_file():
            paths = [where]
        else:
            problems.append(f"knowledge: {entry!r}: no such file or folder ({where})")
            continue
        for path in paths:
            name = _name(path, home)
            if path.suffix.lower() not in READABLE:
                if where.is_file():
                    problems.append(
                        f"knowledge: {name}: headend does not read {path.suffix!r} files"
                    )
                continue  # a folder's or glob's other files are left out
            if not os.access(path, os.R_OK):
                problems.append(f"knowledge: {name}: cannot be read")
                continue
            found.setdefault(name, path)
    return sorted(found.items()), problems


def _name(path: Path, home: Path) -> str:
    try:
        return path.resolve().relative_to(home.resolve()).as_posix()
    except ValueError:
        return str(path)


def check_embeddings(settings: Settings, routes: RouteTable, agents: Iterable[Agent]) -> None:
    """``knowledge.embedding``, and each agent's, names the built-in model or a model route
    that exists."""
    named = [(f"{settings.source}: knowledge.embedding", settings.knowledge.embedding)]
    for agent in agents:
        if agent.spec.knowledge is not None and agent.spec.knowledge.embedding is not None:
            where = f"{agent.spec.source}: knowledge.embedding"
            named.append((where, agent.spec.knowledge.embedding))
    problems = [
        f"{where}: '{name}' is neither 'builtin' nor a model route (models:)"
        for where, name in named
        if name not in (BUILTIN, BUILTIN_MODEL) and routes.for_client(name) is None
    ]
    if problems:
        raise ConfigError(problems)
