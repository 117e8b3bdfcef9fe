"""llama.cpp's own messages, through headend's logging (logger ``headend.llama_cpp``).

llama-cpp-python silences a model's loading by pointing file descriptor 2 at /dev/null for as
long as it takes, and every other thread's stderr goes with it: access lines, errors and
readiness probes written meanwhile were lost (half a minute of them for a 7B model). headend
loads with that silencing off and installs llama.cpp's log callback instead: its lines reach
the log at debug level (errors as warnings), as whole lines, and nothing touches stderr.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import threading
from typing import Any

log = logging.getLogger("headend.llama_cpp")

# ggml_log_level: NONE, INFO, WARN, ERROR, DEBUG, CONT (the previous line goes on)
ERROR = 3
CONTINUED = 5


class _Lines(threading.local):
    """What a thread has written since its last newline, and at which level."""

    def __init__(self) -> None:
        self.text = ""
        self.level = logging.DEBUG


def _level(ggml_level: int) -> int:
    return logging.WARNING if ggml_level == ERROR else logging.DEBUG


@functools.cache
def route_llama_logs() -> Any:
    """Install the callback, once per process; the callback is returned (and cached) so that
    ctypes keeps it alive for as long as llama.cpp may call it."""
    import llama_cpp

    lines = _Lines()

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if level != CONTINUED:
            lines.level = _level(level)
        lines.text += text.decode("utf-8", errors="replace")
        if "\n" not in lines.text:
            return
        *complete, lines.text = lines.text.split("\n")
        if log.isEnabledFor(lines.level):
            for line in complete:
                if line.strip():
                    log.log(lines.level, "%s", line.rstrip())

    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    return callback
