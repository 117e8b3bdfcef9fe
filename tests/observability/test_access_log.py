"""The access line written in batches: the same text and JSON that ``logging`` wrote, held
until a batch fills, its time is up, or the server stops."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

from headend.observability.access_log import AccessLog
from headend.observability.logs import ACCESS_LOGGER, JsonFormatter, LogFormat, TextFormatter

FIELDS: dict[str, Any] = {
    "request_id": "req_1",
    "method": "POST",
    "path": "/v1/chat/completions",
    "status": 200,
    "surface": "chat_completions",
    "model": "gpt",
    "key_id": None,
    "duration_ms": 2.84,
    "overhead_ms": 1.097,
    "prompt_tokens": 6,
    "completion_tokens": 4,
}
MESSAGE = "req_1 POST /v1/chat/completions 200 model=gpt key=- tokens=6+4 2.8ms overhead=1.10ms"


def through_logging(formatter: logging.Formatter, created: float) -> str:
    """What the logging framework made of the same line (as headend wrote it before)."""
    record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 1, MESSAGE, None, None)
    record.created, record.msecs = created, (created - int(created)) * 1000
    for key, value in FIELDS.items():
        setattr(record, key, value)
    return formatter.format(record)


def written(log_format: LogFormat, at: float) -> str:
    out = io.StringIO()
    log = AccessLog(log_format, out, clock=lambda: at)
    log.write(dict(FIELDS), MESSAGE)  # no running loop: written at once
    return out.getvalue()


def test_the_lines_are_those_logging_wrote() -> None:
    at = 1_796_400_000.25
    assert written("text", at) == through_logging(TextFormatter(), at) + "\n"
    ours = json.loads(written("json", at))
    theirs = json.loads(through_logging(JsonFormatter(), at))
    assert ours == theirs
    assert list(ours) == list(theirs)  # the same order too: time, level, logger, message…


async def test_lines_wait_for_a_full_batch_or_their_time() -> None:
    out = io.StringIO()
    log = AccessLog("text", out, batch_lines=3, flush_seconds=0.1)
    log.write(FIELDS, "one")
    log.write(FIELDS, "two")
    assert out.getvalue() == ""  # held, off the request's path
    log.write(FIELDS, "three")
    assert out.getvalue().count("\n") == 3  # a full batch: one write
    log.write(FIELDS, "four")
    await asyncio.sleep(0.05)
    assert "four" not in out.getvalue()
    await asyncio.sleep(0.1)
    assert out.getvalue().endswith(" INFO headend.access: four\n")  # its time was up


async def test_flush_writes_what_is_held_at_once() -> None:
    out = io.StringIO()
    log = AccessLog("json", out, flush_seconds=60)
    log.write(FIELDS, "held")
    log.flush()  # what the lifespan's end does on SIGTERM
    assert json.loads(out.getvalue())["message"] == "held"
    log.flush()
    assert out.getvalue().count("\n") == 1
