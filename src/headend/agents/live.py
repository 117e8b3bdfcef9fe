"""Live changes: what is served follows its sources, without a restart.

- The agents directory and headend.yaml's ``models:`` are looked at every second (with
  ``reload.watch``, the default) and on SIGHUP: a changed file is its agent's next version
  (recorded in the store), a new file a new agent, a removed one stops being served.
- A file that no longer validates keeps its last good version serving; the problem is
  logged, listed by ``/health/ready`` (which agent, not the file's text) and by
  ``headend check``. A headend.yaml that no longer validates keeps the model routes as they
  were. Other sections of headend.yaml take effect at the next restart (logged).
- What the API published, rolled back or deleted on any instance sharing the store is
  served here within a second or two (``AgentEditor.sync``).

Requests already running keep the agent (and its routes) they started with: each holds its
own, and what changes is only which one the next request finds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from pathlib import Path

from headend.agents.editor import AgentEditor
from headend.agents.registry import API, FILE, agent_files, read_agent_files
from headend.agents.versions import AgentVersions
from headend.config import Settings, load_settings
from headend.errors import ConfigError
from headend.providers.model_routes import RouteTable

log = logging.getLogger(__name__)

EVERY = 1.0  # seconds between looks at the files and the store
SETTLE, SETTLE_TRIES = 0.2, 5  # a changed file is read once unchanged for this long
CONFIG = "headend.yaml"  # the key of its problems
Fingerprint = dict[str, tuple[int, int]]  # path: (mtime in ns, size)


class LiveAgents:
    def __init__(self, settings: Settings, versions: AgentVersions, editor: AgentEditor) -> None:
        self.settings = settings  # headend.yaml as last read (the routes come from its models:)
        self.versions = versions
        self.editor = editor
        self.directory = settings.effective_agents_dir()
        self.config = Path(settings.source) if settings.source != "defaults" else None
        self.problems: dict[str, list[str]] = {}  # by agent id, and CONFIG
        self._wake = asyncio.Event()
        self._seen: Fingerprint = {}

    def hup(self) -> None:
        """Read the files again now (SIGHUP)."""
        self._wake.set()

    def notes(self) -> list[str]:
        """What ``/health/ready`` lists: which sources do not serve as written."""
        found = []
        for name in sorted(self.problems):
            if name == CONFIG:
                found.append(f"{CONFIG}: does not validate; model routes unchanged")
                continue
            found.append(f"agent {name}: its file does not validate; {self._serving(name)}")
        found += [
            f"agent {name}: its published version does not build here; not updated"
            for name in self.editor.unbuildable
        ]
        return found

    def _serving(self, agent_id: str) -> str:
        """What serves in place of an agent file that does not validate."""
        current = self.versions.agents.get(agent_id)
        if current is None or current.origin != FILE:
            return "not served"
        return f"serving version {current.version}"

    async def start(self) -> None:
        self._seen = await asyncio.to_thread(self._fingerprint)
        if self.config is not None:
            # What the file says, without the command line's overrides: what a change is
            # told from.
            with contextlib.suppress(ConfigError):
                self.settings = load_settings(self.config)

    async def run(self) -> None:
        """Follow the sources until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(EVERY):
                    await self._wake.wait()
            asked, watching = self._wake.is_set(), self.settings.reload.watch
            self._wake.clear()
            try:
                if asked or watching:
                    seen = await asyncio.to_thread(self._fingerprint)
                    if asked or seen != self._seen:
                        self._seen = await self._settled(seen)
                        await self.reload()
                await self.editor.sync()
            except Exception:  # the next look tries again; serving goes on as it was
                log.exception("following agent changes failed")

    async def _settled(self, seen: Fingerprint) -> Fingerprint:
        """The files once they stop changing for a moment: an editor's save is not read
        half written (a few tries at most)."""
        for _ in range(SETTLE_TRIES):
            await asyncio.sleep(SETTLE)
            again = await asyncio.to_thread(self._fingerprint)
            if again == seen:
                break
            seen = again
        return seen

    def _fingerprint(self) -> Fingerprint:
        paths = agent_files(self.directory)
        if self.config is not None:
            paths.append(self.config)
        found: Fingerprint = {}
        for path in paths:
            with contextlib.suppress(OSError):  # gone since listed
                stat = path.stat()
                found[str(path)] = (stat.st_mtime_ns, stat.st_size)
        return found

    async def reload(self) -> None:
        """Read headend.yaml's ``models:`` and the agent files again, and serve them."""
        routes_changed = self._reload_routes()
        await self._reload_files(routes_changed)
        self.versions.forget_built()
        await self.editor.sync(rebuild=True)

    def _reload_routes(self) -> bool:
        if self.config is None:
            return False
        try:
            fresh = load_settings(self.config)
            table = RouteTable(fresh.models, self.versions.routes.providers, source=fresh.source)
        except ConfigError as exc:
            if self.problems.get(CONFIG) != exc.problems:
                log.error("%s: model routes unchanged: %s", self.config, "; ".join(exc.problems))
            self.problems[CONFIG] = exc.problems
            return False
        self.problems.pop(CONFIG, None)
        before, self.settings = self.settings, fresh
        others = [
            name
            for name in type(fresh).model_fields
            if name not in ("models", "reload") and getattr(fresh, name) != getattr(before, name)
        ]
        if others:
            log.warning(
                "%s: changes to %s take effect at the next restart", self.config, ", ".join(others)
            )
        if fresh.models == before.models:
            return False
        self.versions.routes.adopt(table)
        log.info("%s: model routes now: %s", self.config, ", ".join(table.names()) or "none")
        return True

    async def _reload_files(self, routes_changed: bool) -> None:
        registry = self.versions.agents
        api = {a.id: a.spec.description for a in registry if a.origin == API}
        found = read_agent_files(
            self.directory,
            routes=self.versions.routes,
            tools=self.versions.tools,
            descriptions=api,
        )
        for agent_id, agent in found.agents.items():
            current = registry.get(agent_id)
            if current is not None and current.origin == FILE and current.content == agent.content:
                if routes_changed:
                    registry.agents[agent_id] = replace(agent, version=current.version)
                continue
            version = await self.versions.record_file(agent_id, agent.content)
            registry.agents[agent_id] = replace(agent, version=version)
            log.info("agent %s: now serving version %d (its file)", agent_id, version)
        for agent_id, lines in found.problems.items():
            if self.problems.get(agent_id) == lines:
                continue
            serving = self._serving(agent_id).replace("serving", "still serving")
            log.error("agent %s (%s): %s", agent_id, serving, "; ".join(lines))
        self.problems = {CONFIG: self.problems[CONFIG]} if CONFIG in self.problems else {}
        self.problems.update(found.problems)
        for agent in list(registry):
            if agent.origin == FILE and agent.id not in {*found.agents, *found.problems}:
                del registry.agents[agent.id]
                log.info("agent %s: its file is gone; no longer served", agent.id)
        registry.directory = found.directory
