"""What the access line costs per request, alone: CPU µs of a saturated core.

Runs, in one process and in turn, the request observer's end of a request (metrics, then the
access line) for the same finished chat request, with the access log

- off (the metrics alone: the baseline the line's cost is measured from),
- on, through Python's ``logging`` (the line as headend wrote it until issue 30: a record,
  the request-id filter, the formatter, a write and a flush per line),
- on, as headend writes it now (``headend.observability.access_log``: formatted once,
  written in batches),

in text and in JSON, every line written to /dev/null (a terminal or a pipe costs more, and
the same for both). The line's cost is each "on" figure less the "off" one.

    .venv/bin/python bench/access_log.py [--requests 50000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from headend.observability.access_log import AccessLog
from headend.observability.logs import ACCESS_LOGGER, LogFormat, configure_logging
from headend.observability.metrics import Metrics
from headend.server.observer import RequestObserver
from headend.server.request_record import RequestContext

SCOPE: dict[str, Any] = {"method": "POST", "path": "/v1/chat/completions", "type": "http"}
access = logging.getLogger(ACCESS_LOGGER)


def finished_request() -> RequestContext:
    context = RequestContext(request_id="req_5c0d2e9a1b7f4c3d00000001", surface="chat_completions")
    context.model, context.status, context.key_id = "gpt", 200, "key_5c0d2e9a1b7f4c3d"
    context.tokens = (12, 34)
    return context


def logging_line(context: RequestContext, elapsed: float, overhead: float) -> None:
    """The access line as ``RequestObserver._log`` wrote it through ``logging``."""
    fields: dict[str, Any] = {
        "request_id": context.request_id,
        "method": SCOPE["method"],
        "path": SCOPE["path"],
        "status": context.status,
        "surface": context.surface,
        "model": context.model,
        "key_id": context.key_id,
        "duration_ms": round(elapsed * 1000, 2),
        "overhead_ms": round(overhead * 1000, 3),
    }
    assert context.tokens is not None
    fields["prompt_tokens"], fields["completion_tokens"] = context.tokens
    access.info(
        "%s %s %s %s model=%s key=%s%s %.1fms overhead=%.2fms",
        context.request_id,
        SCOPE["method"],
        SCOPE["path"],
        context.status,
        context.model or "-",
        context.key_id or "-",
        f" tokens={context.tokens[0]}+{context.tokens[1]}",
        elapsed * 1000,
        overhead * 1000,
        extra=fields,
    )


async def cpu_us(finish: Callable[[RequestContext], None], n: int) -> float:
    """CPU µs per call of ``finish``, on a running loop (so batches are timed as served)."""
    context = finished_request()
    for _ in range(n // 10):
        finish(context)
    began = time.process_time()
    for _ in range(n):
        finish(context)
    await asyncio.sleep(0)
    return (time.process_time() - began) / n * 1e6


def variants(log_format: LogFormat) -> dict[str, Callable[[RequestContext], None]]:
    metrics = Metrics(None)
    off = RequestObserver(metrics)
    now = RequestObserver(metrics, access_log=AccessLog(log_format))

    def through_logging(context: RequestContext) -> None:
        off.finished(context, SCOPE)
        logging_line(context, 0.0021, 0.0004)

    return {
        "off": lambda context: off.finished(context, SCOPE),
        "logging": through_logging,
        "batched": lambda context: now.finished(context, SCOPE),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sink = open(os.devnull, "w")  # noqa: SIM115 - the process's stderr from here on
    real_stderr, sys.stderr = sys.stderr, sink
    results: dict[tuple[str, str], list[float]] = {}
    for log_format in ("text", "json"):
        configure_logging(log_format, "info")  # a handler on sys.stderr: /dev/null
        for _ in range(args.rounds):
            for name, finish in variants(log_format).items():
                took = asyncio.run(cpu_us(finish, args.requests))
                results.setdefault((log_format, name), []).append(took)
    sys.stderr = real_stderr
    print("| format | access line | CPU µs per request (median) | the line alone (µs) |")
    print("|---|---|---:|---:|")
    for log_format in ("text", "json"):
        base = statistics.median(results[(log_format, "off")])
        for name in ("off", "logging", "batched"):
            took = statistics.median(results[(log_format, name)])
            alone = "—" if name == "off" else f"{took - base:.1f}"
            print(f"| {log_format} | {name} | {took:.1f} | {alone} |")


if __name__ == "__main__":
    main()
