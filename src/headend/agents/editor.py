"""Agents defined through the API: created with a draft, published as versions, rolled back.

A stored agent's definition is the text an agent file would hold. A draft is checked when
saved as a file is at start-up (the same messages as ``headend check``); publishing records
it as the agent's next version (or serves an earlier one: a rollback) and serves it here at
once. Agents defined by files are read-only here: their file is their source. A file and a
stored agent with the same id: the file's is served, the stored one waits (logged).
"""

from __future__ import annotations

import difflib
import logging
import time
from dataclasses import replace

from headend.agents.registry import API, FILE, Agent
from headend.agents.spec import AGENT_ID
from headend.agents.versions import DRAFT, AgentVersions
from headend.errors import AgentConflict, ConfigError, InvalidRequest, NotFound
from headend.observability import audit_log
from headend.store.base import StoredAgent

log = logging.getLogger(__name__)

Side = int | str  # a version's number, or DRAFT


class AgentEditor:
    def __init__(self, versions: AgentVersions) -> None:
        self.versions = versions
        self.store = versions.store
        self.agents = versions.agents
        self._unbuildable: dict[str, int] = {}  # agent id: its published version, reported
        self._shadowed: set[str] = set()  # stored agents a file's agent of the id hides
        self._changes = 0  # publishes and deletions made here, so far

    async def sync(self, rebuild: bool = False) -> None:
        """Serve what the store says each API agent serves now: at start-up, and every
        second after (another instance may have published, rolled back or deleted one).
        ``rebuild``: build each again (the routes or the files changed)."""
        changes = self._changes
        published = {s.id: s for s in await self.store.stored_agents() if s.published}
        if changes != self._changes:
            return  # this instance published or deleted meanwhile: what was read may be older
        for agent in list(self.agents):
            if agent.origin == API and agent.id not in published:
                self.agents.agents.pop(agent.id, None)
                log.info("agent %s: no longer served (deleted)", agent.id)
        if rebuild:
            self._unbuildable.clear()
        for stored in published.values():
            await self._serve_stored(stored, rebuild, changes)

    async def _serve_stored(self, stored: StoredAgent, rebuild: bool, changes: int) -> None:
        current = self.agents.get(stored.id)
        if current is not None and current.origin == FILE:
            if stored.id not in self._shadowed:
                self._shadowed.add(stored.id)
                log.warning("agent %s: its file is served, not the version stored", stored.id)
            return
        self._shadowed.discard(stored.id)
        number = stored.published
        assert number is not None
        if not rebuild and current is not None and current.version == number:
            return
        if self._unbuildable.get(stored.id) == number:
            return  # reported already; tried again when the routes or files change
        record = await self.store.agent_version(stored.id, number)
        if record is None:
            return
        try:
            agent = self.versions.build(stored.id, record.content, f"{stored.id}@{number}")
        except ConfigError as exc:
            self._unbuildable[stored.id] = number
            kept = f"still serving version {current.version}" if current else "not served"
            log.error("agent %s (%s): %s", stored.id, kept, "; ".join(exc.problems))
            return
        if changes != self._changes:
            return  # a publish here while the version was read: it stands
        self._unbuildable.pop(stored.id, None)
        if current is None or current.version != number:
            log.info("agent %s: now serving version %d", stored.id, number)
        self._serve(replace(agent, version=number))

    @property
    def unbuildable(self) -> list[str]:
        """The API agents whose published version does not build here."""
        return sorted(self._unbuildable)

    def _serve(self, agent: Agent) -> None:
        self.agents.agents[agent.id] = replace(agent, origin=API)

    async def create(self, agent_id: str, text: str, by: str | None) -> StoredAgent:
        """A new stored agent, its definition its first draft (not served until published)."""
        if not AGENT_ID.match(agent_id):
            raise InvalidRequest(
                "An agent id is 1 to 128 letters, digits, '.', '_' or '-', starting with a "
                "letter or digit.",
                param="id",
            )
        current = self.agents.get(agent_id)
        if current is not None and current.origin == FILE:
            raise AgentConflict(
                f"Agent '{agent_id}' is defined by a file in the agents directory.", param="id"
            )
        if self.versions.routes.for_client(agent_id) is not None:
            raise AgentConflict(f"'{agent_id}' is a model route (under models:).", param="id")
        self._check(agent_id, text)
        if not await self.store.create_agent(agent_id, text, by, time.time()):
            raise AgentConflict(f"Agent '{agent_id}' exists.", param="id")
        await audit_log.record(self.store, by, "agent.create", agent_id)
        return await self.stored(agent_id)

    async def save_draft(self, agent_id: str, text: str | None, by: str | None) -> StoredAgent:
        """Replace the draft (None: discard it)."""
        await self.stored(agent_id)
        if text is not None:
            self._check(agent_id, text)
        if not await self.store.save_draft(agent_id, text, by, time.time()):
            raise self._not_found(agent_id)
        action = "agent.discard" if text is None else "agent.draft"
        await audit_log.record(self.store, by, action, agent_id)
        return await self.stored(agent_id)

    async def publish(self, agent_id: str, version: int | None, by: str | None) -> StoredAgent:
        """Serve the draft as the next version, or ``version`` again (a rollback)."""
        stored = await self.stored(agent_id)
        if version is None:
            if stored.draft is None:
                raise InvalidRequest(
                    f"Agent '{agent_id}' has no draft to publish: save one first "
                    f"(PUT /admin/agents/{agent_id}/draft), or name a version to serve again.",
                    code="no_draft",
                )
            text = stored.draft
            agent = self._check(agent_id, text)  # routes and tools may have changed since
            recorded = await self.store.record_agent_version(agent_id, text, API, by, time.time())
            number = recorded.version
        else:
            record = await self.store.agent_version(agent_id, version)
            if record is None:
                raise NotFound(f"Agent '{agent_id}' has no version {version}.", param="version")
            text, number = record.content, version
            agent = self._check(agent_id, text, f"{agent_id}@{version}", "version")
        if not await self.store.publish_agent(
            agent_id, number, by, time.time(), text if version is None else None
        ):
            raise self._not_found(agent_id)
        self._unbuildable.pop(agent_id, None)
        self._changes += 1
        self._serve(replace(agent, version=number))
        await audit_log.record(
            self.store,
            by,
            "agent.publish",
            agent_id,
            version=number,
            previous=stored.published,
            rollback=version is not None,
        )
        return await self.stored(agent_id)

    async def delete(self, agent_id: str, by: str | None) -> None:
        """Stop serving a stored agent; its versions stay on record."""
        stored = await self.stored(agent_id)
        if not await self.store.delete_agent(agent_id, time.time()):
            raise self._not_found(agent_id)
        self._changes += 1
        self.agents.agents.pop(agent_id, None)
        await audit_log.record(self.store, by, "agent.delete", agent_id, version=stored.published)

    async def stored(self, agent_id: str) -> StoredAgent:
        """The stored agent; file agents are read-only here."""
        current = self.agents.get(agent_id)
        if current is not None and current.origin == FILE:
            raise AgentConflict(
                f"Agent '{agent_id}' is defined by its file in the agents directory: change "
                "the file. Only agents created through this API are edited here.",
                param="agent_id",
                code="agent_read_only",
            )
        found = await self.store.stored_agent(agent_id)
        if found is None:
            raise self._not_found(agent_id)
        return found

    async def text(self, agent_id: str, side: Side, param: str) -> str:
        """An agent's definition: a version's, or its draft (``param``: what asked for it)."""
        if side == DRAFT:
            stored = await self.stored(agent_id)
            if stored.draft is None:
                raise NotFound(f"Agent '{agent_id}' has no draft.", param=param)
            return stored.draft
        assert isinstance(side, int)
        record = await self.store.agent_version(agent_id, side)
        if record is None:
            raise NotFound(f"Agent '{agent_id}' has no version {side}.", param=param)
        return record.content

    async def diff(self, agent_id: str, before: Side, after: Side) -> str:
        """A unified diff between two of the agent's definitions."""
        old = await self.text(agent_id, before, "before")
        new = await self.text(agent_id, after, "after")
        lines = difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            f"{agent_id}@{before}",
            f"{agent_id}@{after}",
        )
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)

    def _check(
        self, agent_id: str, text: str, source: str | None = None, param: str = "content"
    ) -> Agent:
        """The agent the definition builds; 400 saying what is wrong, as ``headend check``."""
        try:
            return self.versions.build(agent_id, text, source or f"{agent_id}@{DRAFT}")
        except ConfigError as exc:
            raise InvalidRequest(
                "; ".join(exc.problems), param=param, code="invalid_agent"
            ) from None

    @staticmethod
    def _not_found(agent_id: str) -> NotFound:
        return NotFound(f"No agent '{agent_id}' created through the API.", param="agent_id")
