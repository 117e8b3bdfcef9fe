"""What SQLite keeps of runs that outlive their request: background runs and their events,
the webhook outbox, schedule fires, tool calls waiting for approval. Mixed into
``SqliteStore``."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

import orjson

from headend.store.approval_sql import (
    ADD_APPROVAL_SQL,
    APPLY_APPROVAL_SQL,
    APPROVAL_SQL,
    DECIDE_APPROVAL_SQL,
    OPEN_APPROVALS_SQL,
    SESSION_APPROVALS_SQL,
    approval_record,
    approval_values,
)
from headend.store.background_sql import (
    ADD_EVENT_SQL,
    ADD_STEP_SQL,
    ANY_BACKGROUND_SQL,
    BACKGROUND_SQL,
    CLAIM_STALE_SQL,
    CREATE_BACKGROUND_SQL,
    EVENTS_SQL,
    LAST_EVENT_SQL,
    LIST_BACKGROUND_SQL,
    NOT_WRITTEN_SQL,
    PROGRESS_BODY_SQL,
    PROGRESS_SQL,
    REQUEST_CANCEL_SQL,
    STEPS_SQL,
    UNFINISHED_SQL,
    background_run,
    check_not_written,
    claimed_run,
    event_rows,
    run_step,
    step_rows,
    written_at,
)
from headend.store.base import (
    ApprovalRecord,
    BackgroundProgress,
    BackgroundRun,
    ClaimedRun,
    DeliveryOutcome,
    ResponseRecord,
    RunStep,
    ScheduleFire,
    WebhookDelivery,
)
from headend.store.schedule_sql import (
    CLAIM_FIRE_SQL,
    FIRE_STARTED_SQL,
    RECENT_FIRES_SQL,
    schedule_fire,
)
from headend.store.webhook_sql import (
    ADD_DELIVERY_SQL,
    CLAIM_DELIVERIES_SQL,
    DELIVERIES_SQL,
    RECORD_DELIVERY_SQL,
    delivery_values,
    outcome_values,
    webhook_delivery,
)
from headend.types import Json

T = TypeVar("T")


class SqliteBackground:
    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # SqliteStore's: on the store's own thread

    @staticmethod
    def _save_response(db: sqlite3.Connection, record: ResponseRecord) -> None:
        raise NotImplementedError  # SqliteStore's

    async def create_background_run(
        self, record: ResponseRecord, at: float, resume: Json | None = None
    ) -> None:
        stored = orjson.dumps(resume).decode() if resume is not None else None

        def create(db: sqlite3.Connection) -> None:
            with db:
                self._save_response(db, record)
                values = (record.id, record.owner, False, at, at, stored)
                db.execute(CREATE_BACKGROUND_SQL, values)

        await self._run(create)

    async def claim_stale_runs(
        self, stale_before: float, now: float, limit: int
    ) -> list[ClaimedRun]:
        def claim(db: sqlite3.Connection) -> list[ClaimedRun]:
            with db:
                sql = CLAIM_STALE_SQL.format(lock="")
                rows = db.execute(sql, (now, stale_before, limit)).fetchall()
            return [claimed_run(row) for row in rows]

        return await self._run(claim)

    async def add_approvals(self, records: list[ApprovalRecord]) -> None:
        def add(db: sqlite3.Connection) -> None:
            with db:
                db.executemany(ADD_APPROVAL_SQL, [approval_values(r) for r in records])

        await self._run(add)

    async def open_approvals(self, session_id: str) -> list[ApprovalRecord]:
        def select(db: sqlite3.Connection) -> list[ApprovalRecord]:
            rows = db.execute(OPEN_APPROVALS_SQL, (session_id,)).fetchall()
            return [approval_record(row) for row in rows]

        return await self._run(select)

    async def session_approvals(self, session_id: str, limit: int) -> list[ApprovalRecord]:
        def select(db: sqlite3.Connection) -> list[ApprovalRecord]:
            rows = db.execute(SESSION_APPROVALS_SQL, (session_id, limit)).fetchall()
            return [approval_record(row) for row in rows]

        return await self._run(select)

    async def apply_approvals(self, approval_ids: list[str], at: float) -> None:
        def apply(db: sqlite3.Connection) -> None:
            with db:
                db.executemany(APPLY_APPROVAL_SQL, [(at, id_) for id_ in approval_ids])

        await self._run(apply)

    async def approval(
        self, approval_id: str, owner: str | None, any_owner: bool = False
    ) -> ApprovalRecord | None:
        def select(db: sqlite3.Connection) -> ApprovalRecord | None:
            row = db.execute(APPROVAL_SQL, (approval_id, any_owner, owner)).fetchone()
            return approval_record(row) if row else None

        return await self._run(select)

    async def decide_approval(
        self, approval_id: str, status: str, by: str | None, reason: str | None, at: float
    ) -> bool:
        def decide(db: sqlite3.Connection) -> bool:
            with db:
                values = (status, by, reason, at, approval_id)
                return db.execute(DECIDE_APPROVAL_SQL, values).rowcount == 1

        return await self._run(decide)

    async def list_background_runs(self, status: str | None, limit: int) -> list[BackgroundRun]:
        def select(db: sqlite3.Connection) -> list[BackgroundRun]:
            rows = db.execute(LIST_BACKGROUND_SQL, (status, status, limit)).fetchall()
            return [background_run(row) for row in rows]

        return await self._run(select)

    async def any_background_run(self, response_id: str) -> BackgroundRun | None:
        def select(db: sqlite3.Connection) -> BackgroundRun | None:
            row = db.execute(ANY_BACKGROUND_SQL, (response_id,)).fetchone()
            return background_run(row) if row else None

        return await self._run(select)

    async def run_steps(self, response_id: str) -> list[RunStep]:
        def select(db: sqlite3.Connection) -> list[RunStep]:
            return [run_step(row) for row in db.execute(STEPS_SQL, (response_id,))]

        return await self._run(select)

    async def last_event(self, response_id: str) -> int:
        def select(db: sqlite3.Connection) -> int:
            found = db.execute(LAST_EVENT_SQL, (response_id,)).fetchone()[0]
            return -1 if found is None else int(found)

        return await self._run(select)

    async def unfinished_background_runs(self, owner: str | None) -> int:
        def count(db: sqlite3.Connection) -> int:
            return int(db.execute(UNFINISHED_SQL, (owner,)).fetchone()[0])

        return await self._run(count)

    async def background_run(self, response_id: str, owner: str | None) -> BackgroundRun | None:
        def select(db: sqlite3.Connection) -> BackgroundRun | None:
            row = db.execute(BACKGROUND_SQL, (response_id, owner)).fetchone()
            return background_run(row) if row else None

        return await self._run(select)

    async def record_background_progress(self, progress: BackgroundProgress) -> bool:
        def record(db: sqlite3.Connection) -> bool:
            with db:
                values = (
                    progress.status,
                    written_at(progress),
                    progress.response_id,
                    progress.attempt,
                )
                row = db.execute(PROGRESS_SQL, values).fetchone()
                if row is None:  # finished already (its object stays as it ended), or taken
                    why = db.execute(NOT_WRITTEN_SQL, (progress.response_id,)).fetchone()
                    asked = check_not_written(progress, why)
                else:
                    asked = bool(row[0])
                    body = orjson.dumps(progress.body).decode()
                    db.execute(PROGRESS_BODY_SQL, (body, progress.response_id))
                db.executemany(ADD_EVENT_SQL, event_rows(progress))
                db.executemany(ADD_STEP_SQL, step_rows(progress))
                db.executemany(ADD_DELIVERY_SQL, [delivery_values(d) for d in progress.outbox])
                return asked

        return await self._run(record)

    async def claim_fire(self, agent: str, entry: str, fire_at: float, at: float) -> bool:
        def claim(db: sqlite3.Connection) -> bool:
            with db:
                return db.execute(CLAIM_FIRE_SQL, (agent, entry, fire_at, at)).rowcount == 1

        return await self._run(claim)

    async def fire_started(
        self, agent: str, entry: str, fire_at: float, response_id: str | None, error: str | None
    ) -> None:
        def record(db: sqlite3.Connection) -> None:
            with db:
                db.execute(FIRE_STARTED_SQL, (response_id, error, agent, entry, fire_at))

        await self._run(record)

    async def recent_fires(self, agent: str, limit: int) -> list[ScheduleFire]:
        def select(db: sqlite3.Connection) -> list[ScheduleFire]:
            rows = db.execute(RECENT_FIRES_SQL, (agent, limit)).fetchall()
            return [schedule_fire(row) for row in rows]

        return await self._run(select)

    async def claim_deliveries(
        self, now: float, holder: str, until: float, limit: int
    ) -> list[WebhookDelivery]:
        def claim(db: sqlite3.Connection) -> list[WebhookDelivery]:
            with db:
                rows = db.execute(
                    CLAIM_DELIVERIES_SQL.format(lock=""), (holder, until, now, now, limit)
                ).fetchall()
            return [webhook_delivery(row) for row in rows]

        return await self._run(claim)

    async def record_delivery(
        self, delivery_id: str, holder: str, outcome: DeliveryOutcome
    ) -> None:
        def record(db: sqlite3.Connection) -> None:
            with db:
                db.execute(RECORD_DELIVERY_SQL, outcome_values(delivery_id, holder, outcome))

        await self._run(record)

    async def deliveries(self, status: str | None, limit: int) -> list[WebhookDelivery]:
        def select(db: sqlite3.Connection) -> list[WebhookDelivery]:
            rows = db.execute(DELIVERIES_SQL, (status, status, limit)).fetchall()
            return [webhook_delivery(row) for row in rows]

        return await self._run(select)

    async def response_events(self, response_id: str, after: int, limit: int) -> list[Json]:
        def select(db: sqlite3.Connection) -> list[Json]:
            rows = db.execute(EVENTS_SQL, (response_id, after, limit)).fetchall()
            return [orjson.loads(row[0]) for row in rows]

        return await self._run(select)

    async def request_cancel(self, response_id: str, owner: str | None) -> BackgroundRun | None:
        def cancel(db: sqlite3.Connection) -> BackgroundRun | None:
            with db:
                db.execute(REQUEST_CANCEL_SQL, (True, response_id, owner))
                row = db.execute(BACKGROUND_SQL, (response_id, owner)).fetchone()
            return background_run(row) if row else None

        return await self._run(cancel)
