"""How records map to columns, the same for every backend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from headend.store.base import (
    AgentVersion,
    AuditEntry,
    AuditQuery,
    IdempotentRequest,
    KeyRecord,
    ResponseRecord,
    StoredAgent,
    TurnRecord,
    UsageRow,
)

KEY_COLUMNS = (
    "id, name, prefix, scopes, agents, created_at, expires_at, revoked_at, last_used_at, "
    "rpm, tpm, max_concurrency, tools, origins, visitor_rpm, signing_secret, budget, "
    "budget_period, require_approval, guardrails"
)
KEY_VALUES = KEY_COLUMNS.count(",") + 2  # the columns and the secret's hash
HAS_KEYS_SQL = "SELECT 1 FROM keys LIMIT 1"
USAGE_COLUMNS = "day, key_id, model, requests, prompt_tokens, completion_tokens, cost"
SPENT_SQL = "SELECT COALESCE(SUM(cost), 0) FROM usage WHERE key_id = ? AND day >= ?"
AGENT_VERSION_COLUMNS = "agent, version, content, origin, created_by, created_at"
# A new version numbered one past the agent's latest, unless the latest has this content:
# one statement, so instances recording the same content at once make one version between
# them (a conflict on the number does nothing; the caller reads the latest again).
# Parameters: agent, content, origin, by, at, agent, agent, content, agent.
NEW_AGENT_VERSION_SQL = (
    f"INSERT INTO agent_versions ({AGENT_VERSION_COLUMNS}) "
    "SELECT CAST(? AS TEXT), COALESCE(MAX(version), 0) + 1, CAST(? AS TEXT), "
    "CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS DOUBLE PRECISION) "
    "FROM agent_versions WHERE agent = ? "
    "HAVING NOT EXISTS (SELECT 1 FROM agent_versions latest WHERE latest.agent = ? "
    "AND latest.content = ? AND latest.version = "
    "(SELECT MAX(version) FROM agent_versions WHERE agent = ?)) "
    "ON CONFLICT DO NOTHING"
)
LATEST_AGENT_VERSION_SQL = (
    f"SELECT {AGENT_VERSION_COLUMNS} FROM agent_versions WHERE agent = ? "
    "ORDER BY version DESC LIMIT 1"
)
STORED_AGENT_COLUMNS = (
    "id, published, published_by, published_at, draft, draft_by, draft_at, created_by, created_at"
)
# A new stored agent, or a deleted one's id taken again (its versions carry on).
# Parameters: id, draft, by, at (draft_by and created_by alike), at.
CREATE_AGENT_SQL = (
    "INSERT INTO agents (id, draft, draft_by, draft_at, created_by, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET draft = excluded.draft, draft_by = excluded.draft_by, "
    "draft_at = excluded.draft_at, created_by = excluded.created_by, "
    "created_at = excluded.created_at, published = NULL, published_by = NULL, "
    "published_at = NULL, deleted_at = NULL WHERE agents.deleted_at IS NOT NULL"
)
SAVE_DRAFT_SQL = (
    "UPDATE agents SET draft = ?, draft_by = ?, draft_at = ? WHERE id = ? AND deleted_at IS NULL"
)
# Parameters: version, by, at, the draft published (NULL: none) three times, id.
PUBLISH_AGENT_SQL = (
    "UPDATE agents SET published = ?, published_by = ?, published_at = ?, "
    "draft = CASE WHEN draft = ? THEN NULL ELSE draft END, "
    "draft_by = CASE WHEN draft = ? THEN NULL ELSE draft_by END, "
    "draft_at = CASE WHEN draft = ? THEN NULL ELSE draft_at END "
    "WHERE id = ? AND deleted_at IS NULL"
)
DELETE_AGENT_SQL = "UPDATE agents SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL"
# Every message of a session with its turn's version (a turn stored before versions has no
# row in turns). Parameter: session_id.
TURNS_SQL = (
    "SELECT DISTINCT m.turn, t.agent_version, t.created_at FROM messages m "
    "LEFT JOIN turns t ON t.session_id = m.session_id AND t.turn = m.turn "
    "WHERE m.session_id = ? ORDER BY m.turn"
)
# A new claim on an Idempotency-Key, taking over only an expired one (one statement, so two
# processes cannot both claim it). Parameters: owner, key, body_hash, expires_at, now.
CLAIM_SQL = (
    "INSERT INTO idempotency (owner, key, body_hash, status, headers, body, expires_at) "
    "VALUES (?, ?, ?, NULL, NULL, NULL, ?) "
    "ON CONFLICT (owner, key) DO UPDATE SET body_hash = excluded.body_hash, status = NULL, "
    "headers = NULL, body = NULL, expires_at = excluded.expires_at "
    "WHERE idempotency.expires_at <= ?"
)


def idempotent_request(row: Sequence[Any]) -> IdempotentRequest:
    body_hash, status, headers, body = row
    return IdempotentRequest(
        body_hash, status, orjson.loads(headers) if headers else {}, bytes(body or b"")
    )


def key_row(record: KeyRecord) -> tuple[Any, ...]:
    agents = None if record.agents is None else orjson.dumps(list(record.agents)).decode()
    return (
        record.id,
        record.name,
        record.prefix,
        orjson.dumps(list(record.scopes)).decode(),
        agents,
        record.created_at,
        record.expires_at,
        record.revoked_at,
        record.last_used_at,
        record.rpm,
        record.tpm,
        record.max_concurrency,
        None if record.tools is None else orjson.dumps(record.tools).decode(),
        None if record.origins is None else orjson.dumps(list(record.origins)).decode(),
        record.visitor_rpm,
        record.signing_secret,
        record.budget,
        record.budget_period,
        record.require_approval,
        record.guardrails,
    )


def key_record(row: Sequence[Any]) -> KeyRecord:
    (id_, name, prefix, scopes, agents, created, expires, revoked, used, rpm, tpm, most, tools) = (
        row[:13]
    )
    origins, visitor_rpm, signing_secret, budget, budget_period, require_approval = row[13:19]
    grant = None if tools is None else orjson.loads(tools)
    return KeyRecord(
        id=id_,
        name=name,
        prefix=prefix,
        scopes=tuple(orjson.loads(scopes)),
        agents=None if agents is None else tuple(orjson.loads(agents)),
        created_at=created,
        expires_at=expires,
        revoked_at=revoked,
        last_used_at=used,
        rpm=rpm,
        tpm=tpm,
        max_concurrency=most,
        tools=tuple(grant) if isinstance(grant, list) else grant,
        origins=None if origins is None else tuple(orjson.loads(origins)),
        visitor_rpm=visitor_rpm,
        signing_secret=signing_secret,
        budget=budget,
        budget_period=budget_period,
        require_approval=bool(require_approval),
        guardrails=row[19],
    )


def agent_version(row: Sequence[Any]) -> AgentVersion:
    agent, version, content, origin, by, at = row
    return AgentVersion(agent, version, content, origin, by, at)


def draft_values(agent: str, draft: str | None, by: str | None, at: float) -> tuple[Any, ...]:
    """SAVE_DRAFT_SQL's parameters: a discarded draft keeps no author."""
    if draft is None:
        return (None, None, None, agent)
    return (draft, by, at, agent)


def publish_values(
    agent: str, version: int, by: str | None, at: float, draft: str | None
) -> tuple[Any, ...]:
    return (version, by, at, draft, draft, draft, agent)


def stored_agent(row: Sequence[Any]) -> StoredAgent:
    return StoredAgent(*row)


def turn_record(row: Sequence[Any]) -> TurnRecord:
    turn, version, at = row
    return TurnRecord(turn, version, at)


def usage_row(row: Sequence[Any]) -> UsageRow:
    day, key_id, model, requests, prompt, completion, cost = row
    return UsageRow(day, key_id or None, model, requests, prompt, completion, cost)


USAGE_SUMS = ", ".join(
    f"{c} = usage.{c} + excluded.{c}"
    for c in ("requests", "prompt_tokens", "completion_tokens", "cost")
)


def usage_values(row: UsageRow) -> tuple[Any, ...]:
    return (
        row.day,
        row.key_id or "",
        row.model,
        row.requests,
        row.prompt_tokens,
        row.completion_tokens,
        row.cost,
    )


AUDIT_COLUMNS = "at, actor, action, target, detail"
ADD_AUDIT_SQL = f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
# Parameters: audit_query_values.
AUDIT_SQL = (
    f"SELECT {AUDIT_COLUMNS}, id FROM audit WHERE (CAST(? AS BIGINT) IS NULL OR id < ?) "
    "AND (CAST(? AS TEXT) IS NULL OR target = ?) "
    "AND (CAST(? AS TEXT) IS NULL OR action = ? OR action LIKE ?) "
    "AND (CAST(? AS TEXT) IS NULL OR actor = ?) ORDER BY id DESC LIMIT ?"
)


def audit_values(entry: AuditEntry) -> tuple[Any, ...]:
    detail = orjson.dumps(entry.detail).decode()
    return (entry.at, entry.actor, entry.action, entry.target, detail)


def audit_query_values(query: AuditQuery) -> tuple[Any, ...]:
    family = None if query.action is None else query.action.replace("%", "") + ".%"
    return (
        query.before,
        query.before,
        query.target,
        query.target,
        query.action,
        query.action,
        family,
        query.actor,
        query.actor,
        query.limit,
    )


def audit_entry(row: Sequence[Any]) -> AuditEntry:
    at, actor, action, target, detail, id_ = row
    return AuditEntry(at, actor, action, target, orjson.loads(detail), id_)


RESPONSE_COLUMNS = "id, owner, session_id, turn, created_at, body, input_items"


def response_row(record: ResponseRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.owner,
        record.session_id,
        record.turn,
        record.created_at,
        orjson.dumps(record.body).decode(),
        orjson.dumps(record.input_items).decode(),
    )


def response_item_rows(record: ResponseRecord) -> list[tuple[str, str, str, str]]:
    """(owner, id, response_id, item) for each item of the response that has an id: what
    ``item_reference`` inputs may point at. Open mode's owner is ''."""
    items = [*record.input_items, *record.body.get("output", ())]
    return [
        (record.owner or "", item["id"], record.id, orjson.dumps(item).decode())
        for item in items
        if isinstance(item, dict) and isinstance(item.get("id"), str)
    ]


def response_record(row: Sequence[Any]) -> ResponseRecord:
    id_, owner, session_id, turn, created, body, items = row
    return ResponseRecord(
        id_, owner, session_id, turn, created, orjson.loads(body), orjson.loads(items)
    )
