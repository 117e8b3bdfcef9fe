"""One way to run SQL on either backend: what knowledge's tables are written against.

The sessions, keys and runs tables came first, with a module of SQL per backend. Knowledge's
tables are written once: its statements use ``?`` placeholders and portable SQL, its schema
names column types through ``Dialect``, and they run through a ``Db``: ``fetch`` and
``execute`` for one statement, ``batch`` for statements that commit together. A step that must
not happen twice is fenced inside its statements (``WHERE attempts = ?``), never by Python
between two of them, so one atomic batch is all a backend has to offer.

``SqliteDb`` runs on the store's own thread and connection; ``PostgresDb`` on its pool.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from headend.store.postgres_params import dollars

T = TypeVar("T")
Row = tuple[Any, ...]
Params = Sequence[Any]


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs in a schema between the backends: type names, and how a row gets an
    increasing integer id."""

    name: str
    real: str
    blob: str
    json: str
    serial: str  # an integer primary key the database numbers

    def ddl(self, template: str) -> str:
        return template.format(real=self.real, blob=self.blob, json=self.json, serial=self.serial)


SQLITE = Dialect("sqlite", "REAL", "BLOB", "TEXT", "INTEGER PRIMARY KEY AUTOINCREMENT")
POSTGRES = Dialect(
    "postgres",
    "DOUBLE PRECISION",
    "BYTEA",
    "TEXT",
    "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
)

Statement = tuple[str, Params]


class Db(Protocol):
    dialect: Dialect
    # pgvector is there: chunks keep their vectors in an ``embedding`` column too, searched
    # by an HNSW index in the database (else in memory, see ``knowledge.search``)
    vector_index: bool

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        """The rows of one statement (an ``UPDATE … RETURNING`` is committed)."""
        ...

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; how many rows it changed."""
        ...

    async def batch(self, statements: Sequence[Statement | tuple[str, list[Params]]]) -> list[int]:
        """Run statements in one transaction, all or nothing; how many rows each changed. A
        statement whose parameters are a list of sequences runs once for each."""
        ...


def _is_many(params: Any) -> bool:
    return isinstance(params, list) and (not params or isinstance(params[0], list | tuple))


class SqliteDb:
    """Statements on the SQLite store's one connection, on its one thread."""

    dialect = SQLITE
    vector_index = False

    def __init__(self, run: Callable[[Callable[[sqlite3.Connection], T]], Awaitable[T]]) -> None:
        self._run: Any = run

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        def work(db: sqlite3.Connection) -> list[Row]:
            with db:  # an UPDATE … RETURNING commits too
                return db.execute(sql, tuple(params)).fetchall()

        rows: list[Row] = await self._run(work)
        return rows

    async def execute(self, sql: str, params: Params = ()) -> int:
        def work(db: sqlite3.Connection) -> int:
            with db:
                return db.execute(sql, tuple(params)).rowcount

        changed: int = await self._run(work)
        return changed

    async def batch(self, statements: Sequence[Statement | tuple[str, list[Params]]]) -> list[int]:
        def work(db: sqlite3.Connection) -> list[int]:
            counts = []
            with db:
                for sql, params in statements:
                    if _is_many(params):
                        counts.append(db.executemany(sql, [tuple(p) for p in params]).rowcount)
                    else:
                        counts.append(db.execute(sql, tuple(params)).rowcount)
            return counts

        done: list[int] = await self._run(work)
        return done


@lru_cache(maxsize=512)
def _pg(sql: str) -> str:
    return dollars(sql)


def _changed(status: str) -> int:
    """asyncpg's command tag (``UPDATE 3``, ``INSERT 0 1``) as a row count."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PostgresDb:
    """Statements on the PostgreSQL store's pool."""

    dialect = POSTGRES

    def __init__(self, pool: Callable[[], Any], vector_index: bool = False) -> None:
        self._pool = pool
        self.vector_index = vector_index

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        rows = await self._pool().fetch(_pg(sql), *params)
        return [tuple(row) for row in rows]

    async def execute(self, sql: str, params: Params = ()) -> int:
        return _changed(await self._pool().execute(_pg(sql), *params))

    async def batch(self, statements: Sequence[Statement | tuple[str, list[Params]]]) -> list[int]:
        counts = []
        async with self._pool().acquire() as db, db.transaction():
            for sql, params in statements:
                if _is_many(params):
                    if params:
                        # executemany reports no count: each row is fenced in its statement.
                        await db.executemany(_pg(sql), [tuple(p) for p in params])
                    counts.append(len(params))
                else:
                    counts.append(_changed(await db.execute(_pg(sql), *params)))
        return counts
