"""Running the app under uvicorn: its options, and the drain on SIGTERM.

On SIGTERM (or a first Ctrl-C) the process drains: ``/health/ready`` answers 503 from then
on, uvicorn stops accepting connections and closes idle ones, running requests and streams
get up to ``server.drain_seconds`` to finish (then they are cancelled), the lifespan's end
flushes key use and token usage to the store, and the process exits 0. A second Ctrl-C
stops at once.
"""

from __future__ import annotations

import contextvars
import gc
import logging
import signal
import socket
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from headend.config import Settings
from headend.server.ingress import uvicorn_options
from headend.server.readiness import Readiness

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, readiness: Readiness) -> None:
        super().__init__(config)
        self.readiness = readiness

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
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


def serve(
    app: Starlette,
    settings: Settings,
    *,
    log_level: str,
    sockets: list[socket.socket] | None = None,
) -> None:
    """Serve until drained, on ``sockets`` when a supervisor bound them."""
    config = uvicorn_config(app, settings, log_level)
    DrainingServer(config, app.state.readiness).run(sockets=sockets)
