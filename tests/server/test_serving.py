"""A signal interrupts whatever code is running, a request's included: what its handler
logs belongs to no request."""

from __future__ import annotations

import logging
import signal

import uvicorn

from headend.observability.logs import RequestIdFilter, current_request
from headend.server.readiness import Readiness
from headend.server.serving import DrainingServer


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.addFilter(RequestIdFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def app(scope: object, receive: object, send: object) -> None:
    """Never called: the server is not started."""


def test_the_drain_line_is_not_tagged_with_the_request_it_interrupted() -> None:
    lines = Lines()
    logger = logging.getLogger("headend.server.serving")
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    readiness = Readiness()
    server = DrainingServer(uvicorn.Config(app, timeout_graceful_shutdown=30), readiness)
    inside = current_request.set("req_interrupted")
    try:
        server.handle_exit(signal.SIGTERM, None)
    finally:
        current_request.reset(inside)
        logger.removeHandler(lines)
    (drain,) = [r for r in lines.records if "draining" in r.getMessage()]
    assert getattr(drain, "request_id", None) is None
    assert readiness.draining
    assert server.should_exit
