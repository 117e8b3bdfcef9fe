"""Watching text stream into a page: what a browser user sees, step by step."""

from __future__ import annotations

import time
from typing import Any


def texts_until(locator: Any, final: str, seconds: float = 15) -> list[str]:
    """Each different text of ``locator`` until it reads ``final`` (or time runs out): more
    than two means it grew while the stream ran, not all at once."""
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = locator.text_content() if locator.count() else ""
        if text and (not seen or seen[-1] != text):
            seen.append(text)
        if text == final:
            break
        time.sleep(0.03)
    return seen
