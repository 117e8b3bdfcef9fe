"""The audit log: every change to a key or an agent, and every answer to a tool call that
waited for approval — who made it, what, to what, when —
kept in the store, so instances sharing a store keep one log. Listed by ``headend audit``
and ``GET /admin/audit``."""

from __future__ import annotations

import getpass
import time
from typing import Any

from headend.store.base import AuditEntry, Store

# Every action the log holds, with what it means (``headend audit --help`` shows them).
ACTIONS = {
    "key.create": "a key was issued",
    "key.rotate": "a key got a new secret (the old one stopped working)",
    "key.revoke": "a key was revoked",
    "agent.create": "an agent was created through the API, its definition its first draft",
    "agent.draft": "an agent's draft was saved",
    "agent.discard": "an agent's draft was discarded",
    "agent.publish": "a draft was published as a new version, or a version served again",
    "agent.delete": "an API agent stopped being served (its versions stay)",
    "agent.version": "an agent file's content became a new version",
    "approval.approve": "a tool call waiting for approval was approved (it runs)",
    "approval.deny": "a tool call waiting for approval was denied, or left unanswered",
    "approval.expire": "a tool call waited for approval past its time (it did not run)",
    "file.upload": "a file was uploaded (its name, purpose and size)",
    "file.delete": "a file was deleted, and its chunks in every vector store",
    "guardrail.block": "a guardrail blocked a request, an answer or a tool call (the check, "
    "where, and the hash of what matched; never the text)",
}
ANONYMOUS = "anonymous"  # a change made while headend ran without keys
FILE = "file"  # the agents directory


def known(action: str) -> bool:
    """An action, or a family of them (``agent``: every ``agent.*``)."""
    return action in ACTIONS or any(name.startswith(f"{action}.") for name in ACTIONS)


def unknown(action: str) -> str:
    families = "key, agent, approval, file, guardrail"
    return f"no audit action {action!r}: {', '.join(ACTIONS)} (or {families})"


def cli_actor() -> str:
    """Who runs a ``headend`` command: ``cli:<the OS user>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid
        return "cli"


async def record(store: Store, actor: str | None, action: str, target: str, **detail: Any) -> None:
    """Add one entry (``actor`` None: no key, headend runs open)."""
    if action not in ACTIONS:
        raise ValueError(f"no audit action {action!r}")
    await store.add_audit(AuditEntry(time.time(), actor or ANONYMOUS, action, target, detail))
