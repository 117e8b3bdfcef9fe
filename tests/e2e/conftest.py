"""Fixtures for the end-to-end tests. ``receiver``: a webhook endpoint on loopback, for a
module's site to deliver to. ``browser``: a real browser for the console and widget tests,
Debian's Chromium driven by Playwright (its own browser download cannot work offline);
``HEADEND_REQUIRE_BROWSER=1`` (CI) turns a missing browser into a failure instead of a skip."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import NoReturn

import pytest

from tests.webhook_receiver import WebhookReceiver

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def no_browser() -> NoReturn:
    message = "browser tests need Debian's chromium and playwright (make test installs both)"
    if os.environ.get("HEADEND_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        no_browser()
    if not os.path.exists(CHROMIUM):
        no_browser()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    server.start()
    yield server
    server.stop()
