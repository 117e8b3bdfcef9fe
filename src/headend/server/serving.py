"""Running the app under uvicorn: its options, and the drain on SIGTERM.

On SIGTERM (or a first Ctrl-C) the process drains: ``/health/ready`` answers 503 from then
on, uvicorn stops accepting connections and closes idle ones, running requests and streams
get up to ``server.drain_seconds`` to finish (then they are cancelled), background runs get
what is left of it, the lifespan's end flushes key use and token usage to the store, and
the process exits 0. A second Ctrl-C
stops at once.
"""

from __future__ import annotations

import contextvars
import gc
import logging
import signal
import socket
from collections.abc import Callable
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from headend.config import Settings
from headend.errors import HeadendError, StartupError
from headend.server.ingress import uvicorn_options
from headend.server.readiness import Readiness

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        readiness: Readiness,
        on_started: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.readiness = readiness
        self.on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.on_started is not None:
            self.on_started()
        # What start-up built (modules, schemas, agents, routes) lives as long as the
        # process: moved out of the collector's sight, each full collection under load no
        # longer walks it (these were most of the objects it walked).
        gc.collect()
        gc.freeze()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded for uvicorn to raise again once it has stopped: a drained process
        # exits 0, not by the signal.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
            return
        if not self.should_exit:
            # A signal handler runs inside whatever code it interrupted, a request's
            # included: its line is logged outside any request's context.
            contextvars.Context().run(
                log.info,
                "%s: draining (up to %g s for running requests)",
                signal.Signals(sig).name,
                self.config.timeout_graceful_shutdown,
            )
        self.readiness.drain()
        self.should_exit = True


def uvicorn_config(app: Starlette | str, settings: Settings, log_level: str) -> uvicorn.Config:
    """Logging is set up already (``configure_logging``), so uvicorn gets no config of its
    own, and its access line gives way to headend's."""
    return uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_level=log_level,
        log_config=None,
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=settings.server.drain_seconds,  # type: ignore[arg-type]
        **uvicorn_options(settings.server),
    )


class _QuietStartupFailure(logging.Filter):
    """uvicorn logs a failed start-up as a traceback and two more lines; a failure headend
    can name (a ``HeadendError``: Redis not answering, no keys on a public address) is said
    once by ``serve`` instead. Anything else keeps uvicorn's traceback: it is a bug."""

    def __init__(self, app: Starlette) -> None:
        super().__init__()
        self.app = app

    def filter(self, record: logging.LogRecord) -> bool:
        return not isinstance(self.app.state.startup_failure, HeadendError)


def serve(
    app: Starlette,
    settings: Settings,
    *,
    log_level: str,
    sockets: list[socket.socket] | None = None,
    on_started: Callable[[], None] | None = None,
) -> None:
    """Serve until drained, on ``sockets`` when a supervisor bound them; ``on_started`` is
    called once the app has started and the server listens.

    Raises why the app could not start (the app's own error, or ``StartupError``).
    """
    config = uvicorn_config(app, settings, log_level)
    quiet = _QuietStartupFailure(app)
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(quiet)
    server = DrainingServer(config, app.state.readiness, on_started)
    try:
        server.run(sockets=sockets)
    except SystemExit:  # uvicorn's way of saying it could not start
        if server.started:
            raise
    finally:
        uvicorn_log.removeFilter(quiet)
    failure = app.state.startup_failure
    if isinstance(failure, HeadendError):
        raise failure
    if failure is not None:
        raise StartupError(f"start-up failed: {type(failure).__name__}: {failure}")
    if not server.started:  # uvicorn logged why (the address in use, say)
        where = f"{settings.server.host}:{settings.server.port}"
        raise StartupError(f"could not start serving on {where}")
