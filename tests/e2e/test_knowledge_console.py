"""The console's Knowledge page in Chromium: a key with the chat scope makes a store, uploads
files into it, watches them index (a broken one fails with its reason) and searches it; the
page fits a desktop and a phone."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import RunningServer
from tests.e2e.sites import issue, site_fixture

pytestmark = pytest.mark.e2e

served = site_fixture("kc")


@pytest.mark.parametrize("width", [1280, 360])
def test_make_a_store_upload_watch_and_search(
    served: RunningServer, browser: object, width: int, tmp_path: Path
) -> None:
    from playwright.sync_api import Browser, FilePayload, expect

    assert isinstance(browser, Browser)
    key = str(issue(served, name=f"kc-{width}", scopes=["chat"])["secret"])
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(served.base_url + "/console")
    page.fill("#key", key)
    page.click("#sign-in-form button[type=submit]")
    page.click("#nav-knowledge")
    expect(page.locator("#knowledge")).to_be_visible()
    expect(page.locator("#stores-empty")).to_be_visible()

    page.fill("#store-name", "Handbook")
    page.click("#store-form button[type=submit]")
    expect(page.locator("#store-panel")).to_be_visible()
    expect(page.locator("#stores-body")).to_contain_text("Handbook")

    ferries: FilePayload = {
        "name": "ferries.md",
        "mimeType": "text/markdown",
        "buffer": b"The night ferry to the islands leaves at eleven from pier four.",
    }
    broken: FilePayload = {"name": "broken.pdf", "mimeType": "application/pdf", "buffer": b"%PDF"}
    page.set_input_files("#upload-files", [ferries, broken])
    page.click("#upload-form button[type=submit]")
    files = page.locator("#store-files-body")
    expect(files).to_contain_text("ferries.md", timeout=20_000)
    expect(files.locator("tr", has_text="completed")).to_have_count(1, timeout=30_000)
    expect(files.locator("tr", has_text="failed")).to_have_count(1, timeout=30_000)
    expect(files).to_contain_text("invalid_file")
    expect(page.locator("#store-title")).to_contain_text("1 ready, 1 failed")
    expect(page.locator("#stores-body")).to_contain_text("1 ready, 1 failed")  # followed too

    page.fill("#search-query", "when does the boat leave")
    page.click("#search-form button[type=submit]")
    results = page.locator("#search-results li")
    expect(results.first).to_contain_text("ferries.md")
    expect(results.first).to_contain_text("pier four")

    page.wait_for_load_state("networkidle")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    page.screenshot(path=str(tmp_path / f"knowledge-{width}.png"), full_page=True)
