"""The PostgreSQL store, for many instances serving together (``store: postgresql://…``).

asyncpg with a connection pool; migrations are the same ordered, named, recorded pattern
as SQLite's, in SQL of PostgreSQL's own. Install with ``pip install headend[postgres]``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from headend.errors import ConfigError
from headend.store.background_sql import SAVE_RESPONSE_SQL
from headend.store.base import (
    AgentVersion,
    AuditEntry,
    AuditQuery,
    ConsoleLogin,
    IdempotentRequest,
    KeyRecord,
    NewSession,
    ResponseRecord,
    SessionRecord,
    StoredAgent,
    TurnRecord,
    UsageRow,
)
from headend.store.knowledge_schema import PGVECTOR
from headend.store.postgres_background import PostgresBackground
from headend.store.postgres_migrations import MIGRATIONS
from headend.store.postgres_params import dollars
from headend.store.rows import (
    ADD_AUDIT_SQL,
    AGENT_VERSION_COLUMNS,
    AUDIT_SQL,
    CLAIM_SQL,
    CREATE_AGENT_SQL,
    DELETE_AGENT_SQL,
    HAS_KEYS_SQL,
    KEY_COLUMNS,
    KEY_VALUES,
    LATEST_AGENT_VERSION_SQL,
    NEW_AGENT_VERSION_SQL,
    PUBLISH_AGENT_SQL,
    RESPONSE_COLUMNS,
    SAVE_DRAFT_SQL,
    SPENT_SQL,
    STORED_AGENT_COLUMNS,
    TURNS_SQL,
    USAGE_COLUMNS,
    USAGE_SUMS,
    agent_version,
    audit_entry,
    audit_query_values,
    audit_values,
    draft_values,
    idempotent_request,
    key_record,
    key_row,
    publish_values,
    response_item_rows,
    response_record,
    response_row,
    stored_agent,
    turn_record,
    usage_row,
    usage_values,
)
from headend.store.schedule_sql import (
    PRUNE_FIRES_SQL,
)
from headend.store.sql import Db, PostgresDb
from headend.store.webhook_sql import (
    PRUNE_DELIVERIES_SQL,
)
from headend.types import Json
from headend.urls import without_credentials

log = logging.getLogger(__name__)
_COLUMNS = "id, owner, agent, metadata, created_at, updated_at, turns"


# One migrator at a time across instances: a transaction-scoped advisory lock.
_MIGRATION_LOCK = 0x68656164


def _record(row: Any) -> SessionRecord:
    return SessionRecord(
        id=row["id"],
        owner=row["owner"],
        agent=row["agent"],
        metadata=orjson.loads(row["metadata"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        turns=row["turns"],
    )


async def _session(db: Any) -> None:
    """Each connection's settings: an HNSW search that a filter thins out reads on through
    the index until it has its rows (pgvector 0.8; a name PostgreSQL keeps if it is older)."""
    import asyncpg

    try:
        await db.execute("SET hnsw.iterative_scan = relaxed_order")
    except asyncpg.PostgresError:  # a pgvector before 0.8 reserves the name without it
        return


async def _with_pgvector(pool: Any) -> bool:
    """Whether chunks can keep their vectors in pgvector's type: the extension made (or made
    already by an operator, where headend's role may not) and the column added."""
    import asyncpg

    try:
        async with pool.acquire() as db:
            for statement in PGVECTOR:
                await db.execute(statement)
    except asyncpg.PostgresError as exc:
        log.info("pgvector is not available (%s): vectors are searched in memory", exc)
        return False
    return True


class PostgresStore(PostgresBackground):
    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self._min, self._max = min_size, max_size
        self._pool: Any = None
        self.vector_index = False  # pgvector found (see ``knowledge_schema.PGVECTOR``)

    def sql(self) -> Db:
        return PostgresDb(lambda: self._pool, self.vector_index)

    async def start(self) -> None:
        try:
            import asyncpg
        except ModuleNotFoundError as exc:
            raise ConfigError(
                ["store: a postgresql:// store needs asyncpg: pip install 'headend[postgres]'"]
            ) from exc
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=self._min, max_size=self._max, init=_session
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            where = without_credentials(self.url)
            raise ConfigError([f"store: cannot reach {where}: {exc}"]) from exc
        async with self._pool.acquire() as db, db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await db.execute(
                "CREATE TABLE IF NOT EXISTS _migrations "
                "(name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION)"
            )
            done = {row["name"] for row in await db.fetch("SELECT name FROM _migrations")}
            for migration in MIGRATIONS:
                if migration.__name__ not in done:
                    await migration(db)
                    await db.execute(
                        "INSERT INTO _migrations (name, applied_at) VALUES ($1, $2)",
                        migration.__name__,
                        time.time(),
                    )

        self.vector_index = await _with_pgvector(self._pool)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def create_session(
        self, session_id: str, owner: str | None, agent: str, metadata: Json
    ) -> SessionRecord:
        now = time.time()
        await self._pool.execute(
            f"INSERT INTO sessions ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $5, 0)",
            session_id,
            owner,
            agent,
            orjson.dumps(metadata).decode(),
            now,
        )
        return SessionRecord(session_id, owner, agent, metadata, now, now, 0)

    async def get_session(self, session_id: str, owner: str | None) -> SessionRecord | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM sessions WHERE id = $1 AND owner IS NOT DISTINCT FROM $2",
            session_id,
            owner,
        )
        return _record(row) if row else None

    async def list_sessions(
        self, owner: str | None, limit: int, before: float | None = None
    ) -> list[SessionRecord]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM sessions WHERE owner IS NOT DISTINCT FROM $1 "
            "AND updated_at < $2 ORDER BY updated_at DESC LIMIT $3",
            owner,
            before if before is not None else float("inf"),
            limit,
        )
        return [_record(row) for row in rows]

    async def delete_session(self, session_id: str, owner: str | None) -> bool:
        status = await self._pool.execute(
            "DELETE FROM sessions WHERE id = $1 AND owner IS NOT DISTINCT FROM $2",
            session_id,
            owner,
        )
        return bool(status != "DELETE 0")

    async def messages(self, session_id: str, through_turn: int | None = None) -> list[Json]:
        rows = await self._pool.fetch(
            "SELECT message FROM messages WHERE session_id = $1 "
            "AND ($2::int IS NULL OR turn <= $2) ORDER BY seq",
            session_id,
            through_turn,
        )
        return [orjson.loads(row["message"]) for row in rows]

    async def append_turn(
        self,
        session_id: str,
        messages: list[Json],
        new: NewSession | None = None,
        agent_version: int | None = None,
    ) -> int:
        encoded = [orjson.dumps(m).decode() for m in messages]  # fails before any write
        now = time.time()
        async with self._pool.acquire() as db, db.transaction():
            if new is not None:
                await db.execute(
                    f"INSERT INTO sessions ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $5, 0)",
                    session_id,
                    new.owner,
                    new.agent,
                    orjson.dumps(new.metadata).decode(),
                    now,
                )
            turn = await db.fetchval(
                "UPDATE sessions SET turns = turns + 1, updated_at = $2 WHERE id = $1 "
                "RETURNING turns - 1",
                session_id,
                now,
            )
            seq = await db.fetchval(
                "SELECT COALESCE(MAX(seq), -1) + 1 FROM messages WHERE session_id = $1",
                session_id,
            )
            await db.executemany(
                "INSERT INTO messages (session_id, seq, turn, message) "
                "VALUES ($1, $2, $3, $4::jsonb)",
                [(session_id, seq + i, turn, text) for i, text in enumerate(encoded)],
            )
            await db.execute(
                "INSERT INTO turns (session_id, turn, agent_version, created_at) "
                "VALUES ($1, $2, $3, $4)",
                session_id,
                turn,
                agent_version,
                now,
            )
        return int(turn)

    async def turns(self, session_id: str) -> list[TurnRecord]:
        rows = await self._pool.fetch(dollars(TURNS_SQL), session_id)
        return [turn_record(tuple(row)) for row in rows]

    async def record_agent_version(
        self, agent: str, content: str, origin: str, by: str | None, at: float
    ) -> AgentVersion:
        while True:
            row = await self._pool.fetchrow(dollars(LATEST_AGENT_VERSION_SQL), agent)
            if row is not None and row["content"] == content:
                return agent_version(tuple(row))
            # ignored when another instance took the number: read again
            await self._pool.execute(
                dollars(NEW_AGENT_VERSION_SQL),
                *(agent, content, origin, by, at, agent, agent, content, agent),
            )

    async def agent_version(self, agent: str, version: int) -> AgentVersion | None:
        row = await self._pool.fetchrow(
            f"SELECT {AGENT_VERSION_COLUMNS} FROM agent_versions WHERE agent = $1 AND version = $2",
            agent,
            version,
        )
        return agent_version(tuple(row)) if row else None

    async def agent_versions(self, agent: str) -> list[AgentVersion]:
        rows = await self._pool.fetch(
            f"SELECT {AGENT_VERSION_COLUMNS} FROM agent_versions WHERE agent = $1 "
            "ORDER BY version DESC",
            agent,
        )
        return [agent_version(tuple(row)) for row in rows]

    async def create_agent(self, agent: str, draft: str, by: str | None, at: float) -> bool:
        return await self._change(CREATE_AGENT_SQL, agent, draft, by, at, by, at)

    async def stored_agents(self) -> list[StoredAgent]:
        rows = await self._pool.fetch(
            f"SELECT {STORED_AGENT_COLUMNS} FROM agents WHERE deleted_at IS NULL ORDER BY id"
        )
        return [stored_agent(tuple(row)) for row in rows]

    async def stored_agent(self, agent: str) -> StoredAgent | None:
        row = await self._pool.fetchrow(
            f"SELECT {STORED_AGENT_COLUMNS} FROM agents WHERE id = $1 AND deleted_at IS NULL",
            agent,
        )
        return stored_agent(tuple(row)) if row else None

    async def save_draft(self, agent: str, draft: str | None, by: str | None, at: float) -> bool:
        return await self._change(SAVE_DRAFT_SQL, *draft_values(agent, draft, by, at))

    async def publish_agent(
        self, agent: str, version: int, by: str | None, at: float, draft: str | None
    ) -> bool:
        return await self._change(PUBLISH_AGENT_SQL, *publish_values(agent, version, by, at, draft))

    async def delete_agent(self, agent: str, at: float) -> bool:
        return await self._change(DELETE_AGENT_SQL, at, agent)

    async def _change(self, sql: str, *parameters: Any) -> bool:
        """Run one write; whether it changed a row."""
        status = await self._pool.execute(dollars(sql), *parameters)
        return not str(status).endswith(" 0")

    async def claim(self, session_id: str, holder: str, until: float) -> bool:
        status = await self._pool.execute(
            "UPDATE sessions SET busy_by = $2, busy_until = $3 WHERE id = $1 AND "
            "(busy_until IS NULL OR busy_until < $4 OR busy_by = $2)",
            session_id,
            holder,
            until,
            time.time(),
        )
        return bool(status != "UPDATE 0")

    async def release(self, session_id: str, holder: str) -> None:
        await self._pool.execute(
            "UPDATE sessions SET busy_by = NULL, busy_until = NULL WHERE id = $1 AND busy_by = $2",
            session_id,
            holder,
        )

    async def create_key(self, record: KeyRecord, secret_hash: str) -> None:
        await self._pool.execute(
            f"INSERT INTO keys ({KEY_COLUMNS}, secret_hash) "
            f"VALUES ({', '.join(f'${i}' for i in range(1, KEY_VALUES + 1))})",
            *key_row(record),
            secret_hash,
        )

    async def key_by_hash(self, secret_hash: str) -> KeyRecord | None:
        row = await self._pool.fetchrow(
            f"SELECT {KEY_COLUMNS} FROM keys WHERE secret_hash = $1", secret_hash
        )
        return key_record(tuple(row)) if row else None

    async def ping(self) -> None:
        if self._pool is None:
            raise RuntimeError("the store is closed")
        await self._pool.fetchval("SELECT 1")

    async def list_keys(self) -> list[KeyRecord]:
        rows = await self._pool.fetch(f"SELECT {KEY_COLUMNS} FROM keys ORDER BY created_at")
        return [key_record(tuple(row)) for row in rows]

    async def has_keys(self) -> bool:
        return bool(await self._pool.fetchval(HAS_KEYS_SQL))

    async def revoke_key(self, key_id: str, at: float) -> bool:
        status = await self._pool.execute(
            "UPDATE keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL", key_id, at
        )
        return bool(status != "UPDATE 0")

    async def rotate_key(self, key_id: str, secret_hash: str, prefix: str) -> bool:
        status = await self._pool.execute(
            "UPDATE keys SET secret_hash = $2, prefix = $3 WHERE id = $1 AND revoked_at IS NULL",
            key_id,
            secret_hash,
            prefix,
        )
        return bool(status != "UPDATE 0")

    async def touch_keys(self, used: dict[str, float]) -> None:
        await self._pool.executemany(
            "UPDATE keys SET last_used_at = $2 WHERE id = $1", list(used.items())
        )

    async def add_usage(self, rows: list[UsageRow]) -> None:
        await self._pool.executemany(
            f"INSERT INTO usage ({USAGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            f"ON CONFLICT (day, key_id, model) DO UPDATE SET {USAGE_SUMS}",
            [usage_values(row) for row in rows],
        )

    async def usage(self, since_day: str, key_id: str | None = None) -> list[UsageRow]:
        rows = await self._pool.fetch(
            f"SELECT {USAGE_COLUMNS} FROM usage WHERE day >= $1 AND ($2::text IS NULL "
            "OR key_id = $2) ORDER BY day, key_id, model",
            since_day,
            key_id,
        )
        return [usage_row(tuple(row)) for row in rows]

    async def spent(self, key_id: str, since_day: str) -> float:
        return float(await self._pool.fetchval(dollars(SPENT_SQL), key_id, since_day))

    async def add_audit(self, entry: AuditEntry) -> None:
        await self._pool.execute(dollars(ADD_AUDIT_SQL), *audit_values(entry))

    async def audit(self, query: AuditQuery) -> list[AuditEntry]:
        rows = await self._pool.fetch(dollars(AUDIT_SQL), *audit_query_values(query))
        return [audit_entry(tuple(row)) for row in rows]

    async def save_response(self, record: ResponseRecord) -> None:
        async with self._pool.acquire() as db, db.transaction():
            await self._save_response(db, record)

    @staticmethod
    async def _save_response(db: Any, record: ResponseRecord) -> None:
        await db.execute(dollars(SAVE_RESPONSE_SQL), *response_row(record))
        await db.executemany(
            "INSERT INTO response_items (owner, id, response_id, item) "
            "VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT DO NOTHING",
            response_item_rows(record),
        )

    async def response_item(self, item_id: str, owner: str | None) -> Json | None:
        row = await self._pool.fetchrow(
            "SELECT item FROM response_items WHERE owner = $1 AND id = $2",
            owner or "",
            item_id,
        )
        return orjson.loads(row[0]) if row else None

    async def get_response(self, response_id: str, owner: str | None) -> ResponseRecord | None:
        row = await self._pool.fetchrow(
            f"SELECT {RESPONSE_COLUMNS} FROM responses "
            "WHERE id = $1 AND owner IS NOT DISTINCT FROM $2",
            response_id,
            owner,
        )
        return response_record(tuple(row)) if row else None

    async def delete_response(self, response_id: str, owner: str | None) -> bool:
        status = await self._pool.execute(
            "DELETE FROM responses WHERE id = $1 AND owner IS NOT DISTINCT FROM $2",
            response_id,
            owner,
        )
        return bool(status != "DELETE 0")

    async def save_console_login(self, token_hash: str, login: ConsoleLogin) -> None:
        await self._pool.execute(
            "INSERT INTO console_logins (token_hash, key_id, secret_hash, expires_at) "
            "VALUES ($1, $2, $3, $4)",
            token_hash,
            login.key_id,
            login.secret_hash,
            login.expires_at,
        )

    async def console_login(self, token_hash: str, now: float) -> ConsoleLogin | None:
        row = await self._pool.fetchrow(
            "SELECT key_id, secret_hash, expires_at FROM console_logins "
            "WHERE token_hash = $1 AND expires_at > $2",
            token_hash,
            now,
        )
        return ConsoleLogin(row[0], row[1], row[2]) if row else None

    async def end_console_login(self, token_hash: str) -> None:
        await self._pool.execute("DELETE FROM console_logins WHERE token_hash = $1", token_hash)

    async def claim_idempotency(
        self, owner: str, key: str, body_hash: str, now: float, lease: float
    ) -> IdempotentRequest | None:
        async with self._pool.acquire() as db:
            status = await db.execute(dollars(CLAIM_SQL), owner, key, body_hash, now + lease, now)
            if status.endswith(" 1"):
                return None
            row = await db.fetchrow(
                "SELECT body_hash, status, headers, body FROM idempotency "
                "WHERE owner = $1 AND key = $2",
                owner,
                key,
            )
        return idempotent_request(tuple(row))

    async def finish_idempotency(
        self,
        owner: str,
        key: str,
        body_hash: str,
        answer: tuple[int, dict[str, str], bytes],
        keep_until: float,
    ) -> None:
        status, headers, body = answer
        await self._pool.execute(
            "UPDATE idempotency SET status = $4, headers = $5, body = $6, expires_at = $7 "
            "WHERE owner = $1 AND key = $2 AND body_hash = $3 AND status IS NULL",
            owner,
            key,
            body_hash,
            status,
            orjson.dumps(headers).decode(),
            body,
            keep_until,
        )

    async def release_idempotency(self, owner: str, key: str, body_hash: str) -> None:
        await self._pool.execute(
            "DELETE FROM idempotency "
            "WHERE owner = $1 AND key = $2 AND body_hash = $3 AND status IS NULL",
            owner,
            key,
            body_hash,
        )

    async def prune_idempotency(self, now: float) -> int:
        status = await self._pool.execute("DELETE FROM idempotency WHERE expires_at <= $1", now)
        return int(status.rsplit(" ", 1)[1])

    async def prune(self, updated_before: float) -> int:
        async with self._pool.acquire() as db, db.transaction():
            await db.execute("DELETE FROM console_logins WHERE expires_at < $1", time.time())
            await db.execute("DELETE FROM responses WHERE created_at < $1", updated_before)
            await db.execute(dollars(PRUNE_DELIVERIES_SQL), updated_before)
            await db.execute(dollars(PRUNE_FIRES_SQL), updated_before)
            status = await db.execute("DELETE FROM sessions WHERE updated_at < $1", updated_before)
        return int(status.split()[-1])
