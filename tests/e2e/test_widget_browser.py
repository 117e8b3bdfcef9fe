"""The chat widget in a real browser, on real pages of other origins: from an allowed site it
opens, streams an answer and keeps the conversation across a reload; from any other site it
shows the refusal. The site's CSS does not reach into the widget, and it works with a
keyboard: Escape closes it and gives the focus back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import RunningServer
from tests.e2e.sites import issue, site_fixture
from tests.e2e.streaming import texts_until
from tests.upstream import FakeUpstream, Reply
from tests.web_page import Site

pytestmark = pytest.mark.e2e

SUPPORT = "---\nmodel: up/support\n---\nYou help shoppers.\n"
served = site_fixture("g", {"support": SUPPORT})

# A hostile stylesheet: if it reached into the widget, the checks below would see it.
PAGE = """<!doctype html>
<html><head><title>A shop</title>
<style>* {{ color: rgb(255, 0, 0) !important; font-size: 40px !important; }}
div {{ display: block; }} textarea {{ display: none !important; }}</style></head>
<body><h1>Shop</h1><a href="#" id="outside">outside</a>
<script src="{headend}/widget.js" data-agent="support" data-key="{key}" data-title="Help desk"
  data-color="#0a7d32" data-greeting="Hi! Ask me anything." async></script>
</body></html>"""


@pytest.fixture(scope="module")
def shop() -> Iterator[Site]:
    site = Site()
    yield site
    site.stop()


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[Site]:
    site = Site()
    yield site
    site.stop()


def test_the_widget_answers_on_its_site_and_keeps_the_conversation(
    served: RunningServer, browser: object, fake: FakeUpstream, shop: Site, elsewhere: Site
) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    created = issue(
        served, name="shop", publishable=True, agents=["support"], origins=[shop.origin]
    )
    shop.page = PAGE.format(headend=served.base_url, key=created["secret"])
    page = browser.new_page()
    page.goto(shop.origin + "/")
    launcher = page.get_by_role("button", name="Open chat: Help desk")
    expect(launcher).to_be_visible()
    assert launcher.evaluate("b => getComputedStyle(b).color") == "rgb(255, 255, 255)"

    launcher.click()
    dialog = page.get_by_role("dialog", name="Help desk")
    expect(dialog).to_be_visible()
    message = page.get_by_label("Message")
    expect(message).to_be_focused()  # focus moves into the panel
    assert message.evaluate("t => getComputedStyle(t).display") != "none"
    assert message.evaluate("t => getComputedStyle(t).fontSize") == "15px"
    expect(page.locator(".msg.assistant")).to_have_text(["Hi! Ask me anything."])

    fake.script("g", Reply(text="We ship within two days, to most countries.", chunk_delay=0.15))
    message.fill("When do you ship?")
    message.press("Enter")
    answer = page.locator(".msg.assistant").nth(1)
    seen = texts_until(answer, "We ship within two days, to most countries.")
    assert seen[-1] == "We ship within two days, to most countries."
    assert len(seen) >= 3, seen  # streamed, not all at once
    assert fake.received("g")[0].headers.get("origin") is None  # nothing of the page upstream
    expect(page.get_by_role("button", name="Send")).to_be_enabled()  # the stream has ended

    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Open chat: Help desk")).to_be_focused()

    page.reload()  # a later page load: the same visitor, the same conversation
    page.get_by_role("button", name="Open chat: Help desk").click()
    expect(page.locator(".msg")).to_have_text(
        ["When do you ship?", "We ship within two days, to most countries."]
    )
    fake.script("g", Reply(text="Yes, to Norway too."))
    page.get_by_label("Message").fill("Norway?")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".msg.assistant").last).to_have_text("Yes, to Norway too.")
    continued = fake.received("g")[1].body["messages"]
    assert [m["content"] for m in continued if m["role"] == "user"] == [
        "When do you ship?",
        "Norway?",
    ]
    stored = page.evaluate("() => JSON.stringify({...localStorage})")
    assert "vt-he-" in stored  # the visitor's token is what the widget keeps

    # The same tag on a site the key was not made for: the widget says why it cannot chat.
    elsewhere.page = shop.page
    other = browser.new_page()
    other.goto(elsewhere.origin + "/")
    other.get_by_role("button", name="Open chat: Help desk").click()
    refusal = other.get_by_role("alert")
    expect(refusal).to_contain_text(f"does not work from {elsewhere.origin}")
    assert len(fake.received("g")) == 2  # nothing reached the model
    other.close()
    page.close()
