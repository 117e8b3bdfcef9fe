"""Background responses: a Responses run that outlives its request.

``background: true`` answers at once with the response queued; the run goes on in a task of
this instance. Its events (numbered by ``sequence_number``, as a stream's are) are kept in
memory for followers here and written to the store by the run's keeper every
``FLUSH_SECONDS``, with the response object as it stands, so that ``GET /v1/responses/{id}``
shows the output so far and a stream can be followed, or resumed after any event, from any
instance sharing the store. The keeper also notices a cancel asked on another instance.

A cancelled run stops where it is: its session turn is not written and its response keeps
the output so far, with status ``cancelled``; a run that finished stays finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field

from prometheus_client import Gauge

from headend.config import WebhookSettings
from headend.errors import APIError, InvalidRequest, RateLimited
from headend.runs.events import chunk_batches
from headend.runs.run import Run
from headend.runs.service import RunService
from headend.runs.stored_responses import ResponseNotFound, stored_response
from headend.store.base import BackgroundProgress, ResponseRecord, Store, WebhookDelivery
from headend.surfaces.responses_translate import ResponseEvents, stored_items
from headend.types import Json
from headend.webhooks.outbox import ending_deliveries

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.25  # how often a run's new events and object are written
CANCEL_CHECK_SECONDS = 1.0  # how often a run with nothing to write looks for a cancel
POLL_SECONDS = 0.2  # how often a follower of a run elsewhere reads the store
CANCEL_WAIT_SECONDS = 10.0  # how long a cancel waits for a run elsewhere to stop
EVENTS_PER_READ = 500
LEASE_SECONDS = 10.0  # a run not written to for this long was left by an instance that stopped
REAP_SECONDS = 2.0  # how often each instance looks for such runs
ENDING_EVENTS = frozenset({"response.completed", "response.failed", "response.incomplete"})


@dataclass(slots=True)
class LiveRun:
    """A background run of this instance: its events so far, for the followers here, and
    those not yet written."""

    id: str
    events: list[Json] = field(default_factory=list)
    unwritten: list[Json] = field(default_factory=list)
    done: bool = False
    ending: bool = False  # it has answered, or is writing how it ended: too late to cancel
    cancel_reason: str | None = None  # "owner" or "shutdown", once cancelled
    task: asyncio.Task[None] | None = None
    _more: asyncio.Event = field(default_factory=asyncio.Event)
    writing: asyncio.Lock = field(default_factory=asyncio.Lock)  # one write at a time

    def add(self, events: list[Json]) -> None:
        self.events += events
        self.unwritten += events
        self._wake()

    def finish(self) -> None:
        self.done = True
        self._wake()

    def _wake(self) -> None:
        self._more.set()
        self._more = asyncio.Event()

    async def follow(self, after: int) -> AsyncGenerator[list[Json], None]:
        """The events after sequence number ``after``, then each as it comes, to the end."""
        sent = after + 1  # events[n] has sequence number n
        while True:
            more = self._more
            if sent < len(self.events):
                batch, sent = self.events[sent:], len(self.events)
                yield batch
                continue
            if self.done:
                return
            await more.wait()

    def cancel(self, reason: str) -> None:
        if self.cancel_reason is None and self.task is not None and not self.ending:
            self.cancel_reason = reason
            self.task.cancel()


class BackgroundRuns:
    def __init__(
        self,
        store: Store,
        runs: RunService,
        webhooks: Sequence[WebhookSettings] = (),
        outbox_written: Callable[[], None] = lambda: None,
        most: int = 100,
        running: Gauge | None = None,
    ) -> None:
        self.store = store
        self.runs = runs
        self.most = most  # an owner's runs queued or running at once
        self.running = running  # this instance's runs, as a metric
        self.webhooks = webhooks  # told when a run ends, from an outbox written with its end
        self.outbox_written = outbox_written
        self._live: dict[str, LiveRun] = {}

    async def make_room(self, owner: str | None) -> None:
        """Refuse a new background run to an owner with ``most`` unfinished already."""
        if await self.store.unfinished_background_runs(owner) >= self.most:
            raise RateLimited(
                f"This key has {self.most} background responses queued or running: wait for "
                "one to end, or cancel one (POST /v1/responses/{id}/cancel).",
                kind="concurrency",
                headers={},
            )

    async def accept(
        self, run: Run, events: ResponseEvents, items: list[Json], owner: str | None
    ) -> Json:
        """Store the response as queued and start its run; the queued response."""
        response = events.shape.envelope("queued", [])
        inputs = stored_items(items)
        record = ResponseRecord(response["id"], owner, None, None, time.time(), response, inputs)
        await self.store.create_background_run(record, record.created_at)
        live = self._live[record.id] = LiveRun(record.id)
        live.task = asyncio.create_task(self._drive(live, run, events, inputs, owner))
        if self.running is not None:
            self.running.inc()
        return response

    async def follow(
        self, response_id: str, owner: str | None, after: int
    ) -> AsyncGenerator[list[Json], None]:
        """A background response's events after ``after``, then as they come, to its end
        (refused here, before a stream starts, when there is no such response)."""
        if await self.store.background_run(response_id, owner) is None:
            await self._refuse(response_id, owner, "Only background responses can be streamed.")
        return self._follow(response_id, owner, after)

    async def _follow(
        self, response_id: str, owner: str | None, after: int
    ) -> AsyncGenerator[list[Json], None]:
        live = self._live.get(response_id)
        if live is not None:
            async for batch in live.follow(after):
                yield batch
            return
        while True:  # a run elsewhere, or finished: what the store has, until it ends
            batch = await self.store.response_events(response_id, after, EVENTS_PER_READ)
            if batch:
                after = batch[-1]["sequence_number"]
                yield batch
                if batch[-1]["type"] in ENDING_EVENTS:
                    return
                continue
            state = await self.store.background_run(response_id, owner)
            if state is None or state.finished:
                # its last events were written with its status: read once more
                rest = await self.store.response_events(response_id, after, EVENTS_PER_READ)
                if rest:
                    yield rest
                return
            await asyncio.sleep(POLL_SECONDS)

    async def cancel(self, response_id: str, owner: str | None) -> Json:
        """Stop the owner's background run (idempotent: a finished one stays as it ended);
        the response as it is then."""
        found = await self.store.request_cancel(response_id, owner)
        if found is None:
            await self._refuse(response_id, owner, "Only background responses can be cancelled.")
        elif not found.finished:
            live = self._live.get(response_id)
            if live is not None and live.task is not None:
                live.cancel("owner")
                await asyncio.wait([live.task])
            else:
                await self._until_finished(response_id, owner)
        record = await self.store.get_response(response_id, owner)
        if record is None:
            raise ResponseNotFound(response_id)
        return record.body

    async def close(self, grace: float = 0.0) -> None:
        """On the way out: the runs still going get ``grace`` seconds to end; those that do
        not are stopped, written as failed."""
        tasks = [live.task for live in self._live.values() if live.task is not None]
        if tasks and grace > 0:
            log.info("waiting up to %g s for %d background response(s)", grace, len(tasks))
            await asyncio.wait(tasks, timeout=grace)
        for live in list(self._live.values()):
            live.cancel("shutdown")
        if tasks:
            await asyncio.wait(tasks)

    async def reap_forever(self) -> None:
        while True:
            try:
                await self.reap()
            except Exception:  # the store away: the next pass tries again
                log.warning("background responses: could not look for orphans", exc_info=True)
            await asyncio.sleep(REAP_SECONDS)

    async def reap(self) -> None:
        """End, as failed, the runs whose instance stopped without ending them (killed, or
        lost): their clients would otherwise wait for ever. Taking one up again where it
        stopped is for later; for now it ends with its output so far."""
        now = time.time()
        stale_before = now - LEASE_SECONDS
        for response_id, owner in await self.store.stale_background_runs(stale_before, 16):
            if response_id in self._live or not await self.store.take_stale_run(
                response_id, stale_before, now
            ):
                continue
            record = await self.store.get_response(response_id, owner)
            if record is None:
                continue
            error = {
                "code": "server_error",
                "message": "The instance running this response stopped before it finished.",
            }
            body = {**record.body, "status": "failed", "error": error}
            last = await self.store.last_event(response_id)
            failed = {"type": "response.failed", "sequence_number": last + 1, "response": body}
            outbox = ending_deliveries(response_id, "failed", self.webhooks)
            await self.store.record_background_progress(
                BackgroundProgress(response_id, last + 1, [failed], body, "failed", outbox)
            )
            if outbox:
                self.outbox_written()
            log.warning(
                "background response %s: its instance stopped; ended as failed", response_id
            )

    async def _refuse(self, response_id: str, owner: str | None, why: str) -> None:
        if await self.store.get_response(response_id, owner) is None:
            raise ResponseNotFound(response_id)
        raise InvalidRequest(why, code="not_background")

    async def _until_finished(self, response_id: str, owner: str | None) -> None:
        deadline = time.monotonic() + CANCEL_WAIT_SECONDS
        while time.monotonic() < deadline:
            state = await self.store.background_run(response_id, owner)
            if state is None or state.finished:
                return
            await asyncio.sleep(POLL_SECONDS)

    async def _drive(
        self,
        live: LiveRun,
        run: Run,
        events: ResponseEvents,
        inputs: list[Json],
        owner: str | None,
    ) -> None:
        """The run, its events into ``live``, and its end into the store."""
        keeper = asyncio.create_task(self._keep(live, events))
        status, body = "failed", events.snapshot("failed")
        try:
            live.add(events.start(queued=True))
            async with contextlib.aclosing(chunk_batches(self.runs.events(run))) as batches:
                async for batch in batches:
                    live.add([event for chunk in batch for event in events.feed(chunk)])
            live.ending = True  # answered: a cancel now would leave it completed anyway
            closing, body = events.finish_events()
            # stored before a follower hears it is done, as a response not in background
            await self.store.save_response(stored_response(body, run, inputs, owner))
            live.add(closing)
            status = body["status"]
        except asyncio.CancelledError:
            if live.cancel_reason == "shutdown":
                failed = events.failed(APIError("headend stopped before the run finished."))
                live.add([failed])
                body = failed["response"]
            else:
                status, body = "cancelled", events.snapshot("cancelled")
        except APIError as error:
            failed = events.failed(error)
            live.add([failed])
            body = failed["response"]
        except Exception:  # a bug must not leave the response in progress for ever
            log.exception("background response %s failed", live.id)
            failed = events.failed(APIError("The run failed."))
            live.add([failed])
            body = failed["response"]
        finally:
            live.ending = True
            async with live.writing:  # so the keeper is not stopped halfway through a write
                keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            await self.runs.release(run)
            outbox = ending_deliveries(live.id, status, self.webhooks)
            try:
                await self._write(live, body, status, outbox)
                if outbox:
                    self.outbox_written()
            except Exception:
                log.exception("background response %s: could not write its end", live.id)
            finally:
                live.finish()
                self._live.pop(live.id, None)
                if self.running is not None:
                    self.running.dec()

    async def _keep(self, live: LiveRun, events: ResponseEvents) -> None:
        """While the run goes: its new events written, and a cancel asked elsewhere seen."""
        quiet = 0.0
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            quiet += FLUSH_SECONDS
            if not live.unwritten and quiet < CANCEL_CHECK_SECONDS:
                continue
            quiet = 0.0
            try:
                asked = await self._write(live, events.snapshot("in_progress"), "in_progress")
            except Exception:  # the store is away: try again at the next turn
                log.warning(
                    "background response %s: could not write its progress", live.id, exc_info=True
                )
                continue
            if asked:
                live.cancel("owner")

    async def _write(
        self, live: LiveRun, body: Json, status: str, outbox: tuple[WebhookDelivery, ...] = ()
    ) -> bool:
        """The run's unwritten events, its object and status (and at its end, the webhooks
        it makes), in one transaction; whether its owner asked to cancel it."""
        async with live.writing:
            events, live.unwritten = live.unwritten, []
            first = events[0]["sequence_number"] if events else 0
            try:
                return await self.store.record_background_progress(
                    BackgroundProgress(live.id, first, events, body, status, outbox)
                )
            except BaseException:
                live.unwritten = events + live.unwritten  # written at the next turn
                raise
