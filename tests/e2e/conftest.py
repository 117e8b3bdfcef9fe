"""Fixtures for the end-to-end tests. ``browser``: a real browser for the console and widget
tests, Debian's Chromium driven by Playwright (its own browser download cannot work offline);
``HEADEND_REQUIRE_BROWSER=1`` (CI) turns a missing browser into a failure instead of a skip."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not os.path.exists(CHROMIUM):
        message = "browser tests need Debian's chromium and playwright (make test installs both)"
        if os.environ.get("HEADEND_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()
