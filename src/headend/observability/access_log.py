"""The access line: one per request, formatted once and written in batches, off the request's
path and outside the logging framework.

Through ``logging`` the line cost about 100 µs of a saturated core per request (a record, the
filters, a formatter walking the record's attributes, a write and a flush per line): a third
of the gateway's throughput with the access log on, as operators run it. Here the line is
formatted straight from the request's context into the same text or JSON that ``logging``
gave (``headend.observability.logs``: the same time stamps, level, logger name, message and
fields), appended to a buffer, and the buffer goes to stderr in one write:

- when it holds ``BATCH_LINES`` lines,
- ``FLUSH_SECONDS`` after the first line it holds (a quiet server's line shows within that),
- when the server stops: the lifespan's end, which SIGTERM and Ctrl-C reach after the drain.

So a kill -9 loses at most the lines of the last ``FLUSH_SECONDS`` (and never more than
``BATCH_LINES``). A line may follow another log line written after it (say, an error logged
while the next request ran) by up to ``FLUSH_SECONDS``: each line keeps its own time stamp.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import orjson

from headend.observability.logs import ACCESS_LOGGER, LogFormat

BATCH_LINES = 256
FLUSH_SECONDS = 0.2


class AccessLog:
    def __init__(
        self,
        log_format: LogFormat,
        stream: TextIO | None = None,
        *,
        batch_lines: int = BATCH_LINES,
        flush_seconds: float = FLUSH_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``stream``: stderr (as it is when a batch is written) unless given."""
        self._clock = clock
        self.json = log_format == "json"
        self._stream = stream
        self._batch_lines = batch_lines
        self._flush_seconds = flush_seconds
        self._pending: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1  # the whole second the cached time stamp prefix is of
        self._stamp = ""

    def write(self, fields: dict[str, Any], message: str) -> None:
        """One request's line: ``message`` (the text form) and ``fields`` (the JSON form's
        extras, in order)."""
        now = self._clock()
        if self.json:
            line = {
                "time": self._iso(now),
                "level": "info",
                "logger": ACCESS_LOGGER,
                "message": message,
                **fields,
            }
            self._pending.append(orjson.dumps(line, default=str).decode() + "\n")
        else:
            self._pending.append(f"{self._text_time(now)} INFO {ACCESS_LOGGER}: {message}\n")
        if len(self._pending) >= self._batch_lines:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not serving (a test, a script): at once
                self.flush()
                return
            self._timer = loop.call_later(self._flush_seconds, self.flush)

    def flush(self) -> None:
        """Write what is buffered, in one write."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        text, self._pending = "".join(self._pending), []
        stream = self._stream if self._stream is not None else sys.stderr
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: nothing to tell it to
            pass

    def _text_time(self, now: float) -> str:
        """``logging``'s asctime: local time, milliseconds after a comma."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._stamp},{int((now - second) * 1000):03d}"

    def _iso(self, now: float) -> str:
        """``logs.JsonFormatter``'s: UTC, milliseconds, ``+00:00``."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1000):03d}+00:00"
