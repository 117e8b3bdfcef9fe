"""The embedded store: SQLite in WAL mode, on a thread of its own.

One connection, used only from the store's single worker thread, so calls never share it
concurrently and the event loop never blocks on disk. Commits never checkpoint the WAL
(that made one write in a hundred take 9 ms on a store of a million messages): a second
connection on a thread of its own runs a PASSIVE checkpoint, which neither blocks nor waits
for writers, each second after there were writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

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
from headend.store.migrations import migrate
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
from headend.store.sql import Db, SqliteDb
from headend.store.sqlite_background import SqliteBackground
from headend.store.webhook_sql import (
    PRUNE_DELIVERIES_SQL,
)
from headend.types import Json

T = TypeVar("T")
_COLUMNS = "id, owner, agent, metadata, created_at, updated_at, turns"


def _record(row: tuple[Any, ...]) -> SessionRecord:
    id_, owner, agent, metadata, created, updated, turns = row
    return SessionRecord(
        id=id_,
        owner=owner,
        agent=agent,
        metadata=orjson.loads(metadata),
        created_at=created,
        updated_at=updated,
        turns=turns,
    )


WAL_TRIES = 100  # times 50 ms: how long a new file's journal mode may be contended


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the store's file, in WAL mode, as every store opens it.

    Processes opening a new file together (workers) contend for the switch to WAL, which
    SQLite refuses at once rather than wait (its busy handler is not asked there, to avoid a
    deadlock), so the switch is retried; everything after waits on the busy timeout.
    """
    # The default isolation level: `with db:` wraps writes in one transaction.
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("PRAGMA busy_timeout=5000")
    for attempt in range(WAL_TRIES):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == WAL_TRIES - 1:
                raise
            time.sleep(0.05)
    db.execute("PRAGMA synchronous=NORMAL")  # durable across crashes of the process
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA cache_size=-65536")  # 64 MiB of pages: big stores stay fast
    db.execute("PRAGMA mmap_size=268435456")  # reads straight from the OS cache
    db.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's job, off this path
    return db


class SqliteStore(SqliteBackground):
    def __init__(self, path: Path, checkpoint_every: float = 1.0) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._checkpoint_every = checkpoint_every
        self._checkpointer: asyncio.Task[None] | None = None
        self._writes = 0

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            assert self._db is not None, "the store is not started"
            return work(self._db)

        self._writes += 1  # reads count too: cheaper than telling them apart

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def sql(self) -> Db:
        return SqliteDb(self._run)

    async def start(self) -> None:
        def open_db() -> sqlite3.Connection:
            if str(self.path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            db = connect(self.path)
            migrate(db)
            return db

        self._db = await asyncio.get_running_loop().run_in_executor(self._executor, open_db)
        if str(self.path) != ":memory:":
            self._checkpointer = asyncio.create_task(self._checkpoint_forever())

    async def _checkpoint_forever(self) -> None:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-checkpoint")
        loop = asyncio.get_running_loop()
        db = await loop.run_in_executor(
            executor, lambda: sqlite3.connect(self.path, check_same_thread=False)
        )
        try:
            while True:
                await asyncio.sleep(self._checkpoint_every)
                if self._writes:
                    self._writes = 0
                    await loop.run_in_executor(
                        executor, lambda: db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    )
        finally:
            await loop.run_in_executor(executor, db.close)
            executor.shutdown(wait=False)

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
        if self._db is not None:
            await self._run(lambda db: db.execute("PRAGMA wal_checkpoint(TRUNCATE)") and None)
            await self._run(lambda db: db.close())
            self._db = None
        self._executor.shutdown(wait=True)

    async def create_session(
        self, session_id: str, owner: str | None, agent: str, metadata: Json
    ) -> SessionRecord:
        now = time.time()
        record = SessionRecord(session_id, owner, agent, metadata, now, now, 0)

        def insert(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    f"INSERT INTO sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 0)",
                    (session_id, owner, agent, orjson.dumps(metadata).decode(), now, now),
                )

        await self._run(insert)
        return record

    async def get_session(self, session_id: str, owner: str | None) -> SessionRecord | None:
        def select(db: sqlite3.Connection) -> SessionRecord | None:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM sessions WHERE id = ? AND owner IS ?",
                (session_id, owner),
            ).fetchone()
            return _record(row) if row else None

        return await self._run(select)

    async def list_sessions(
        self, owner: str | None, limit: int, before: float | None = None
    ) -> list[SessionRecord]:
        def select(db: sqlite3.Connection) -> list[SessionRecord]:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM sessions WHERE owner IS ? AND updated_at < ? "
                "ORDER BY updated_at DESC LIMIT ?",
                (owner, before if before is not None else float("inf"), limit),
            ).fetchall()
            return [_record(row) for row in rows]

        return await self._run(select)

    async def delete_session(self, session_id: str, owner: str | None) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            with db:
                gone = db.execute(
                    "DELETE FROM sessions WHERE id = ? AND owner IS ?", (session_id, owner)
                ).rowcount
            return bool(gone)

        return await self._run(delete)

    async def messages(self, session_id: str, through_turn: int | None = None) -> list[Json]:
        def select(db: sqlite3.Connection) -> list[Json]:
            rows = db.execute(
                "SELECT message FROM messages WHERE session_id = ? "
                "AND (? IS NULL OR turn <= ?) ORDER BY seq",
                (session_id, through_turn, through_turn),
            ).fetchall()
            return [orjson.loads(row[0]) for row in rows]

        return await self._run(select)

    async def append_turn(
        self,
        session_id: str,
        messages: list[Json],
        new: NewSession | None = None,
        agent_version: int | None = None,
    ) -> int:
        def append(db: sqlite3.Connection) -> int:
            now = time.time()
            with db:
                if new is not None:
                    db.execute(
                        f"INSERT INTO sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 0)",
                        (
                            session_id,
                            new.owner,
                            new.agent,
                            orjson.dumps(new.metadata).decode(),
                            now,
                            now,
                        ),
                    )
                seq, turn = db.execute(
                    "SELECT COALESCE(MAX(seq), -1) + 1, "
                    "(SELECT turns FROM sessions WHERE id = ?) FROM messages WHERE session_id = ?",
                    (session_id, session_id),
                ).fetchone()
                db.executemany(
                    "INSERT INTO messages (session_id, seq, turn, message) VALUES (?, ?, ?, ?)",
                    [
                        (session_id, seq + i, turn, orjson.dumps(m).decode())
                        for i, m in enumerate(messages)
                    ],
                )
                db.execute(
                    "INSERT INTO turns (session_id, turn, agent_version, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (session_id, turn, agent_version, now),
                )
                db.execute(
                    "UPDATE sessions SET turns = turns + 1, updated_at = ? WHERE id = ?",
                    (now, session_id),
                )
                return int(turn)

        return await self._run(append)

    async def turns(self, session_id: str) -> list[TurnRecord]:
        def select(db: sqlite3.Connection) -> list[TurnRecord]:
            return [turn_record(row) for row in db.execute(TURNS_SQL, (session_id,))]

        return await self._run(select)

    async def record_agent_version(
        self, agent: str, content: str, origin: str, by: str | None, at: float
    ) -> AgentVersion:
        def record(db: sqlite3.Connection) -> AgentVersion:
            while True:
                row = db.execute(LATEST_AGENT_VERSION_SQL, (agent,)).fetchone()
                if row is not None and row[2] == content:
                    return agent_version(row)
                with db:  # ignored when another process took the number: read again
                    db.execute(
                        NEW_AGENT_VERSION_SQL,
                        (agent, content, origin, by, at, agent, agent, content, agent),
                    )

        return await self._run(record)

    async def agent_version(self, agent: str, version: int) -> AgentVersion | None:
        def select(db: sqlite3.Connection) -> AgentVersion | None:
            row = db.execute(
                f"SELECT {AGENT_VERSION_COLUMNS} FROM agent_versions "
                "WHERE agent = ? AND version = ?",
                (agent, version),
            ).fetchone()
            return agent_version(row) if row else None

        return await self._run(select)

    async def agent_versions(self, agent: str) -> list[AgentVersion]:
        def select(db: sqlite3.Connection) -> list[AgentVersion]:
            rows = db.execute(
                f"SELECT {AGENT_VERSION_COLUMNS} FROM agent_versions WHERE agent = ? "
                "ORDER BY version DESC",
                (agent,),
            ).fetchall()
            return [agent_version(row) for row in rows]

        return await self._run(select)

    async def create_agent(self, agent: str, draft: str, by: str | None, at: float) -> bool:
        return await self._change(CREATE_AGENT_SQL, (agent, draft, by, at, by, at))

    async def stored_agents(self) -> list[StoredAgent]:
        def select(db: sqlite3.Connection) -> list[StoredAgent]:
            rows = db.execute(
                f"SELECT {STORED_AGENT_COLUMNS} FROM agents WHERE deleted_at IS NULL ORDER BY id"
            ).fetchall()
            return [stored_agent(row) for row in rows]

        return await self._run(select)

    async def stored_agent(self, agent: str) -> StoredAgent | None:
        def select(db: sqlite3.Connection) -> StoredAgent | None:
            row = db.execute(
                f"SELECT {STORED_AGENT_COLUMNS} FROM agents WHERE id = ? AND deleted_at IS NULL",
                (agent,),
            ).fetchone()
            return stored_agent(row) if row else None

        return await self._run(select)

    async def save_draft(self, agent: str, draft: str | None, by: str | None, at: float) -> bool:
        return await self._change(SAVE_DRAFT_SQL, draft_values(agent, draft, by, at))

    async def publish_agent(
        self, agent: str, version: int, by: str | None, at: float, draft: str | None
    ) -> bool:
        return await self._change(PUBLISH_AGENT_SQL, publish_values(agent, version, by, at, draft))

    async def delete_agent(self, agent: str, at: float) -> bool:
        return await self._change(DELETE_AGENT_SQL, (at, agent))

    async def _change(self, sql: str, parameters: tuple[Any, ...]) -> bool:
        """Run one write; whether it changed a row."""

        def write(db: sqlite3.Connection) -> bool:
            with db:
                return bool(db.execute(sql, parameters).rowcount)

        return await self._run(write)

    async def claim(self, session_id: str, holder: str, until: float) -> bool:
        return await self._change(
            "UPDATE sessions SET busy_by = ?, busy_until = ? WHERE id = ? AND "
            "(busy_until IS NULL OR busy_until < ? OR busy_by = ?)",
            (holder, until, session_id, time.time(), holder),
        )

    async def release(self, session_id: str, holder: str) -> None:
        def free(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "UPDATE sessions SET busy_by = NULL, busy_until = NULL "
                    "WHERE id = ? AND busy_by = ?",
                    (session_id, holder),
                )

        await self._run(free)

    async def create_key(self, record: KeyRecord, secret_hash: str) -> None:
        def insert(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    f"INSERT INTO keys ({KEY_COLUMNS}, secret_hash) "
                    f"VALUES ({', '.join('?' * KEY_VALUES)})",
                    (*key_row(record), secret_hash),
                )

        await self._run(insert)

    async def key_by_hash(self, secret_hash: str) -> KeyRecord | None:
        def select(db: sqlite3.Connection) -> KeyRecord | None:
            row = db.execute(
                f"SELECT {KEY_COLUMNS} FROM keys WHERE secret_hash = ?", (secret_hash,)
            ).fetchone()
            return key_record(row) if row else None

        return await self._run(select)

    async def ping(self) -> None:
        await self._run(lambda db: db.execute("SELECT 1").fetchone())

    async def list_keys(self) -> list[KeyRecord]:
        def select(db: sqlite3.Connection) -> list[KeyRecord]:
            rows = db.execute(f"SELECT {KEY_COLUMNS} FROM keys ORDER BY created_at").fetchall()
            return [key_record(row) for row in rows]

        return await self._run(select)

    async def has_keys(self) -> bool:
        return bool(await self._run(lambda db: db.execute(HAS_KEYS_SQL).fetchone()))

    async def revoke_key(self, key_id: str, at: float) -> bool:
        return await self._change(
            "UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (at, key_id)
        )

    async def rotate_key(self, key_id: str, secret_hash: str, prefix: str) -> bool:
        return await self._change(
            "UPDATE keys SET secret_hash = ?, prefix = ? WHERE id = ? AND revoked_at IS NULL",
            (secret_hash, prefix, key_id),
        )

    async def touch_keys(self, used: dict[str, float]) -> None:
        def touch(db: sqlite3.Connection) -> None:
            with db:
                db.executemany(
                    "UPDATE keys SET last_used_at = ? WHERE id = ?",
                    [(at, key_id) for key_id, at in used.items()],
                )

        await self._run(touch)

    async def add_usage(self, rows: list[UsageRow]) -> None:
        def add(db: sqlite3.Connection) -> None:
            with db:
                db.executemany(
                    f"INSERT INTO usage ({USAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    f"ON CONFLICT (day, key_id, model) DO UPDATE SET {USAGE_SUMS}",
                    [usage_values(row) for row in rows],
                )

        await self._run(add)

    async def usage(self, since_day: str, key_id: str | None = None) -> list[UsageRow]:
        def select(db: sqlite3.Connection) -> list[UsageRow]:
            rows = db.execute(
                f"SELECT {USAGE_COLUMNS} FROM usage WHERE day >= ? AND (? IS NULL OR key_id = ?) "
                "ORDER BY day, key_id, model",
                (since_day, key_id, key_id),
            ).fetchall()
            return [usage_row(row) for row in rows]

        return await self._run(select)

    async def spent(self, key_id: str, since_day: str) -> float:
        def select(db: sqlite3.Connection) -> float:
            return float(db.execute(SPENT_SQL, (key_id, since_day)).fetchone()[0])

        return await self._run(select)

    async def add_audit(self, entry: AuditEntry) -> None:
        await self._change(ADD_AUDIT_SQL, audit_values(entry))

    async def audit(self, query: AuditQuery) -> list[AuditEntry]:
        def select(db: sqlite3.Connection) -> list[AuditEntry]:
            rows = db.execute(AUDIT_SQL, audit_query_values(query)).fetchall()
            return [audit_entry(row) for row in rows]

        return await self._run(select)

    async def save_response(self, record: ResponseRecord) -> None:
        def save(db: sqlite3.Connection) -> None:
            with db:
                self._save_response(db, record)

        await self._run(save)

    @staticmethod
    def _save_response(db: sqlite3.Connection, record: ResponseRecord) -> None:
        db.execute(SAVE_RESPONSE_SQL, response_row(record))
        db.executemany(
            "INSERT OR IGNORE INTO response_items (owner, id, response_id, item) "
            "VALUES (?, ?, ?, ?)",
            response_item_rows(record),
        )

    async def response_item(self, item_id: str, owner: str | None) -> Json | None:
        def select(db: sqlite3.Connection) -> Json | None:
            row = db.execute(
                "SELECT item FROM response_items WHERE owner = ? AND id = ?",
                (owner or "", item_id),
            ).fetchone()
            return orjson.loads(row[0]) if row else None

        return await self._run(select)

    async def get_response(self, response_id: str, owner: str | None) -> ResponseRecord | None:
        def select(db: sqlite3.Connection) -> ResponseRecord | None:
            row = db.execute(
                f"SELECT {RESPONSE_COLUMNS} FROM responses WHERE id = ? AND owner IS ?",
                (response_id, owner),
            ).fetchone()
            return response_record(row) if row else None

        return await self._run(select)

    async def delete_response(self, response_id: str, owner: str | None) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            with db:
                return bool(
                    db.execute(
                        "DELETE FROM responses WHERE id = ? AND owner IS ?", (response_id, owner)
                    ).rowcount
                )

        return await self._run(delete)

    async def save_console_login(self, token_hash: str, login: ConsoleLogin) -> None:
        def insert(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "INSERT INTO console_logins (token_hash, key_id, secret_hash, expires_at) "
                    "VALUES (?, ?, ?, ?)",
                    (token_hash, login.key_id, login.secret_hash, login.expires_at),
                )

        await self._run(insert)

    async def console_login(self, token_hash: str, now: float) -> ConsoleLogin | None:
        def select(db: sqlite3.Connection) -> ConsoleLogin | None:
            row = db.execute(
                "SELECT key_id, secret_hash, expires_at FROM console_logins "
                "WHERE token_hash = ? AND expires_at > ?",
                (token_hash, now),
            ).fetchone()
            return ConsoleLogin(row[0], row[1], row[2]) if row else None

        return await self._run(select)

    async def end_console_login(self, token_hash: str) -> None:
        def delete(db: sqlite3.Connection) -> None:
            with db:
                db.execute("DELETE FROM console_logins WHERE token_hash = ?", (token_hash,))

        await self._run(delete)

    async def claim_idempotency(
        self, owner: str, key: str, body_hash: str, now: float, lease: float
    ) -> IdempotentRequest | None:
        def claim(db: sqlite3.Connection) -> IdempotentRequest | None:
            with db:
                taken = db.execute(CLAIM_SQL, (owner, key, body_hash, now + lease, now)).rowcount
                if taken:
                    return None
                row = db.execute(
                    "SELECT body_hash, status, headers, body FROM idempotency "
                    "WHERE owner = ? AND key = ?",
                    (owner, key),
                ).fetchone()
            return idempotent_request(row)

        return await self._run(claim)

    async def finish_idempotency(
        self,
        owner: str,
        key: str,
        body_hash: str,
        answer: tuple[int, dict[str, str], bytes],
        keep_until: float,
    ) -> None:
        status, headers, body = answer

        def update(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "UPDATE idempotency SET status = ?, headers = ?, body = ?, expires_at = ? "
                    "WHERE owner = ? AND key = ? AND body_hash = ? AND status IS NULL",
                    (
                        status,
                        orjson.dumps(headers).decode(),
                        body,
                        keep_until,
                        owner,
                        key,
                        body_hash,
                    ),
                )

        await self._run(update)

    async def release_idempotency(self, owner: str, key: str, body_hash: str) -> None:
        def delete(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "DELETE FROM idempotency "
                    "WHERE owner = ? AND key = ? AND body_hash = ? AND status IS NULL",
                    (owner, key, body_hash),
                )

        await self._run(delete)

    async def prune_idempotency(self, now: float) -> int:
        def delete(db: sqlite3.Connection) -> int:
            with db:
                return int(
                    db.execute("DELETE FROM idempotency WHERE expires_at <= ?", (now,)).rowcount
                )

        return await self._run(delete)

    async def prune(self, updated_before: float) -> int:
        def delete(db: sqlite3.Connection) -> int:
            with db:
                db.execute("DELETE FROM console_logins WHERE expires_at < ?", (time.time(),))
                db.execute("DELETE FROM responses WHERE created_at < ?", (updated_before,))
                db.execute(PRUNE_DELIVERIES_SQL, (updated_before,))
                db.execute(PRUNE_FIRES_SQL, (updated_before,))
                return int(
                    db.execute(
                        "DELETE FROM sessions WHERE updated_at < ?", (updated_before,)
                    ).rowcount
                )

        return await self._run(delete)
