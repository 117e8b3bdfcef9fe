"""Stored responses: what ``previous_response_id`` continues and ``/v1/responses/{id}`` shows.

A stored response (``store`` is true by default) remembers its session and the turn it
wrote there. Continuing from the session's latest response continues the session; continuing
from an earlier one forks: a new session starts with the history up to that response, so
each branch keeps its own conversation. Continuing with another model forks too (the
Responses API lets a conversation switch models; a session stays with the one it started
with).
"""

from __future__ import annotations

import time

from headend.access.principal import Principal
from headend.errors import InvalidRequest, NotFound
from headend.runs.run import Run
from headend.runs.session_turns import new_session_id
from headend.store.base import NewSession, ResponseRecord, Store
from headend.surfaces.responses_translate import stored_items
from headend.types import Json

SCHEDULE_OWNER = "schedule"  # whose a scheduled run's response is: no key's


class ResponseNotFound(NotFound):
    default_code = "response_not_found"

    def __init__(self, response_id: str, param: str | None = None) -> None:
        super().__init__(f"No response '{response_id}'.", param=param)


class ItemNotFound(InvalidRequest):
    default_code = "item_not_found"


class ResponseService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def resolve(self, items: list[Json], owner: str | None) -> list[Json]:
        """``item_reference`` inputs replaced by the stored items they name (from the
        caller's own stored responses: another key's are as unknown as missing ones)."""
        if not any(item.get("type") == "item_reference" for item in items):
            return items
        resolved = []
        for index, item in enumerate(items):
            if item.get("type") != "item_reference":
                resolved.append(item)
                continue
            item_id = item.get("id")
            found = (
                await self.store.response_item(item_id, owner) if isinstance(item_id, str) else None
            )
            if found is None:
                raise ItemNotFound(
                    f"No stored item '{item_id}' to reference: it is unknown, was deleted, "
                    "or its response was not stored.",
                    param=f"input[{index}].id",
                )
            resolved.append(found)
        return resolved

    async def session_after(self, response_id: str, owner: str | None, model: str) -> str:
        """The session a request with ``previous_response_id`` continues."""
        record = await self.store.get_response(response_id, owner)
        if record is None:
            raise ResponseNotFound(response_id, param="previous_response_id")
        if record.session_id is None or record.turn is None:  # a background run's, unfinished
            status = str(record.body.get("status", "")).replace("_", " ")
            raise InvalidRequest(
                f"Response '{response_id}' is {status} and has no answer to continue from"
                + (
                    ": continue once it has completed."
                    if status in ("queued", "in progress")
                    else "."
                ),
                param="previous_response_id",
                code="response_not_completed",
            )
        session = await self.store.get_session(record.session_id, owner)
        if session is None:  # its conversation was deleted or pruned
            raise ResponseNotFound(response_id, param="previous_response_id")
        if session.turns - 1 == record.turn and session.agent == model:
            return session.id
        history = await self.store.messages(session.id, through_turn=record.turn)
        fork = new_session_id()
        metadata = {"forked_from": session.id, "response_id": response_id}
        await self.store.append_turn(fork, history, NewSession(owner, model, metadata))
        return fork

    async def save(self, response: Json, run: Run, items: list[Json], owner: str | None) -> None:
        await self.store.save_response(stored_response(response, run, stored_items(items), owner))

    async def get(self, response_id: str, owner: str | None) -> ResponseRecord:
        record = await self.store.get_response(response_id, owner)
        if record is None:
            raise ResponseNotFound(response_id)
        return record

    async def readable(self, response_id: str, principal: Principal) -> ResponseRecord:
        """The caller's response, or a scheduled run's (what a schedule's webhook names) if
        the caller may read it: anyone while headend runs without keys, an admin key, or a
        key with ``chat`` that may use the run's agent."""
        record = await self.store.get_response(response_id, principal.owner)
        if record is None and principal.visitor is None:
            scheduled = await self.store.get_response(response_id, SCHEDULE_OWNER)
            agent = str((scheduled.body.get("model") or "") if scheduled else "")
            if scheduled is not None and (
                principal.key_id is None
                or principal.has("admin")
                or (principal.has("chat") and principal.may_use(agent.split("@")[0]))
            ):
                record = scheduled
        if record is None:
            raise ResponseNotFound(response_id)
        return record

    async def delete(self, response_id: str, owner: str | None) -> None:
        if not await self.store.delete_response(response_id, owner):
            raise ResponseNotFound(response_id)


def stored_response(
    response: Json, run: Run, input_items: list[Json], owner: str | None
) -> ResponseRecord:
    """A response as the store keeps it: with the session turn its run wrote."""
    session = run.session
    return ResponseRecord(
        id=response["id"],
        owner=owner,
        session_id=session.session_id if session else None,
        turn=session.written if session else None,
        created_at=time.time(),
        body=response,
        input_items=input_items,
    )
